"""No personal data in any output: recipe + eval on the 20-person corpus, every byte captured.

Streams are captured at the file-descriptor level, temp files are redirected under the test's dir, and every file written is read back.
"""

from __future__ import annotations

import json
import tempfile

from genforget.cli.main import main

CORPUS_ARGS = ["--n_people", "20", "--n_passages", "10", "--forget_frac", "0.2"]


def test_recipe_and_eval_write_no_forget_pii(victim_dir, corpus, tmp_path, capfd, monkeypatch):
    # Progress bars render only on a terminal (tqdm disable=None); their postfixes are numbers only.
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    run, report = tmp_path / "run", tmp_path / "eval"
    argv = ["unlearn", "--model_name_or_path", str(victim_dir), "--forget_data", "pii:forget"]
    argv += [
        "--retain_data",
        "pii:retain",
        "--calibration_data",
        "pii:calibration",
        "--calibration_every",
        "2",
    ]
    argv += [
        "--output_dir",
        str(run),
        "--max_steps",
        "4",
        "--logging_steps",
        "1",
        "--allow_partial",
        "true",
        *CORPUS_ARGS,
    ]
    assert main(argv) == 0
    assert main(["eval", "--model", str(run), "--suite", "quick", "--victim", str(victim_dir),
                 "--output_dir", str(report)]) == 0  # fmt: skip
    streams = capfd.readouterr()
    blobs = [streams.out.encode(), streams.err.encode()]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    blobs += [p.read_bytes() for p in files]
    names = " ".join(str(p) for p in tmp_path.rglob("*"))
    assert len(files) >= 6 and "saved full model" in streams.out  # the check saw the run's output
    secrets = corpus.pii_values("forget") + [t.text for t in corpus.texts("forget")]
    assert len(secrets) >= 20
    leaked = [s for s in secrets if any(s.encode() in b for b in blobs) or s in names]
    assert leaked == []
    record = json.loads((run / "genforget_run.json").read_text())
    assert record["forget_examples"] == 6 and len(record["forget_sha256"]) == 64
