"""Data as it comes (issue 27): TOFU in every directory layout ``datasets`` writes, suite/data
errors as one line and exit 2, chat records checked on load, and the one-switch plain run."""

from __future__ import annotations

import json

import pytest

import genforget
from genforget.cli.main import main
from genforget.data.loaders import as_examples, load_jsonl, load_tofu

ROWS = [
    {"question": f"Who is author {i}?", "answer": f"Author {i} is Name{i}.", "perturbed_answer": ["A.", "B."],
     "paraphrased_answer": f"Name{i} is author {i}."}
    for i in range(3)
]  # fmt: skip


def _layouts(root):
    """The split ``forget01`` written the ways a user may have it on disk."""
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    lines = "".join(json.dumps(r) + "\n" for r in ROWS)
    out = {n: root / n for n in ("json_lines", "save_to_disk", "dataset_dict", "dict_of_splits", "hub_parquet",
                                 "load_dataset_cache")}  # fmt: skip
    out["json_lines"].mkdir()
    (out["json_lines"] / "forget01.json").write_text(lines)  # TOFU's own files: JSON Lines named .json
    ds.save_to_disk(str(out["save_to_disk"] / "forget01"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(out["dataset_dict"] / "forget01"))
    datasets.DatasetDict({"forget01": ds}).save_to_disk(str(out["dict_of_splits"]))
    (out["hub_parquet"] / "forget01").mkdir(parents=True)
    ds.to_parquet(str(out["hub_parquet"] / "forget01" / "train-00000-of-00001.parquet"))
    # the load_dataset cache: <name>/<config>/<version>/<fingerprint>/*.arrow
    (root / "src.jsonl").write_text(lines)
    datasets.load_dataset(
        "json", data_files=str(root / "src.jsonl"), split="train", cache_dir=str(root / "cache")
    )
    out["load_dataset_cache"].mkdir()
    (out["load_dataset_cache"] / "forget01").symlink_to(next((root / "cache").rglob("*.arrow")).parent)
    return out


def test_tofu_reads_every_datasets_layout(tmp_path):
    for name, root in _layouts(tmp_path).items():
        rows = load_tofu(root, "forget01")
        assert [(r["question"], r["answer"], list(r["perturbed_answer"])) for r in rows] == [
            (r["question"], r["answer"], r["perturbed_answer"]) for r in ROWS
        ], name
    with pytest.raises(FileNotFoundError, match="TOFU split 'retain99' not found .* available: forget01"):
        load_tofu(tmp_path / "save_to_disk", "retain99")


def test_eval_data_errors_are_one_line_and_exit_2(tmp_path, victim_dir, capsys):
    (tmp_path / "tofu").mkdir()
    (tmp_path / "tofu" / "forget01_perturbed.jsonl").write_text(json.dumps({"q": "no answer"}) + "\n")
    cases = {
        "missing split": ("tofu:" + str(tmp_path / "nothing"), "forget10_perturbed"),
        "bad record": ("tofu:" + str(tmp_path / "tofu"), "forget01_perturbed.jsonl:1: expected an object"),
        "no forget.jsonl": ("jsonl:" + str(tmp_path), "forget.jsonl not found"),
    }
    for case, (data, msg) in cases.items():
        (tmp_path / "nothing").mkdir(exist_ok=True)
        rc = main(["eval", "--model", str(victim_dir), "--suite", "tofu", "--set", f"data={data}",
                   "forget_split=forget01" if case == "bad record" else "audits=[]", "--output_dir",
                   str(tmp_path / "out"), "--cache_dir", ""])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith("error: ") and "\n" not in err and msg in err, (case, err)
        assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_chat_records_are_checked_when_loaded(tmp_path):
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Oslo"}]}
    assert as_examples([good]) == [good]
    bad = [
        ({"messages": [{"role": "user", "content": "Hi"}]}, "no assistant message"),
        ({"messages": [{"role": "user", "content": 3}]}, "string 'role' and 'content'"),
        ({"messages": [{"role": "assistant", "content": "Oslo", "spans": [[0, 9]]}]}, "within its content"),
    ]
    for ex, msg in bad:
        (tmp_path / "c.jsonl").write_text(json.dumps(ex) + "\n")
        with pytest.raises(ValueError, match=msg):
            load_jsonl(tmp_path / "c.jsonl")


def test_plain_runs_exactly_max_steps_with_nothing_watching(victim, corpus):
    model, tok = victim
    forget, retain = corpus.unlearn_examples("forget"), corpus.full_text_examples("retain")
    # gradient ascent at this rate collapses the model: the guard stops it by default...
    guarded = genforget.unlearn(model, tok, forget, retain, method="grad_ascent", learning_rate=5e-2,
                                max_steps=10, divergence_every=2, return_history=True)  # fmt: skip
    assert any(r.get("diverged") or r.get("stopped") for r in guarded.history)
    # ...plain runs the fixed budget: no calibrated stop, no collateral watch, no guard
    plain = genforget.unlearn(victim[0], tok, forget, retain, method="grad_ascent", learning_rate=5e-2,
                              max_steps=10, divergence_every=2, plain=True, return_history=True)  # fmt: skip
    assert [r["step"] for r in plain.history] == list(range(10))
    with pytest.raises(ValueError, match="no calibration set"):
        genforget.unlearn(model, tok, forget, plain=True, calibration=forget[:1])


def test_qlora_chat_recipe_parses():
    from pathlib import Path

    from genforget.cli.args import parse_config
    from genforget.cli.unlearn import UnlearnScriptArgs
    from genforget.config import UnlearnConfig

    path = Path(__file__).parents[1] / "recipes" / "configs" / "qlora_chat.yaml"
    args, cfg = parse_config((UnlearnScriptArgs, UnlearnConfig), ["--config", str(path), "--plain", "true"])
    assert args.load_in_4bit and args.bnb_4bit_quant_type == "nf4" and cfg.use_lora and cfg.plain
