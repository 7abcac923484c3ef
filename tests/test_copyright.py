"""The copyright demo's pieces: the tiny-Shakespeare play splitter and excerpt/QA builders (on
hand-written speeches and on the real file), MUSE VerbMem/KnowMem wired into
``genforget.evaluation.evaluate`` and ``muse:<dir>`` suites, and a mini end-to-end takedown run."""

from __future__ import annotations

import json

import pytest

from genforget.data.packaged import shakespeare_text
from genforget.data.shakespeare import Excerpt, excerpts, speaker_cloze, speeches, split_plays
from genforget.evaluation.evaluate import evaluate
from genforget.evaluation.metrics.muse import knowmem, verbmem, verbmem_probes
from genforget.evaluation.split import CHUNK_PREFIX_TOKENS, EvalSplit

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\nResolved. resolved.\n\n"
    "MENENIUS:\nWhat work's, my countrymen, in hand?"
)


def test_speeches_and_excerpts_by_hand():
    sp = speeches(TEXT)
    assert [s.speaker for s in sp] == ["First Citizen", "All", "First Citizen", "MENENIUS"]
    assert [TEXT[s.start : s.start + len(s.text)] for s in sp] == [s.text for s in sp]
    # 60 chars: the first speech (47 + label) whole, then the second would overflow -> stop.
    (one,) = excerpts("X", sp, 1, 70)
    assert one.text == sp[0].text and len(one.speeches) == 1
    # Long enough for two speeches and the first line of the third (cut inside it, then stop).
    room = (
        len(sp[0].text)
        + 2
        + len(sp[1].text)
        + 2
        + len("First Citizen:\nYou are all resolved rather to die than to famish?")
    )
    (two,) = excerpts("X", sp, 1, room + 5)
    assert two.text.endswith("famish?") and len(two.speeches) == 3
    # Two excerpts start at speeches 0 and 2 (evenly spread).
    assert [e.speeches[0].speaker for e in excerpts("X", sp, 2, 30)] == ["First Citizen", "First Citizen"]
    assert excerpts("X", sp, 2, 30)[1].speeches[0] is sp[2]


def test_speaker_cloze_by_hand():
    ex = Excerpt("X", TEXT, speeches(TEXT))
    qa = speaker_cloze(ex, per_excerpt=3, min_chars=20)
    assert [q["answer"] for q in qa] == ["All", "First Citizen", "MENENIUS"]
    assert qa[0]["question"] == "Before we proceed any further, hear me speak."
    # "Speak, speak." is short but the only line: kept as is.
    assert qa[1]["question"] == "Speak, speak."
    # "Resolved. resolved." (19 chars) is short: the line before joins it.
    assert qa[2]["question"].endswith("famish?\nResolved. resolved.")
    assert all(q["template"] == "{question}" for q in qa)
    assert len(speaker_cloze(ex, per_excerpt=1)) == 1


def test_split_plays_real_file():
    text = shakespeare_text()
    plays = split_plays(text)
    assert len(plays) == 9
    allsp = speeches(text)
    assert sum(len(sp) for sp in plays.values()) == len(allsp)  # a partition, in order
    home = {
        "PROSPERO": "The Tempest",
        "MIRANDA": "The Tempest",
        "ROMEO": "Romeo and Juliet",
        # (not JULIET: Measure for Measure has one too)
        "CORIOLANUS": "Coriolanus",
        "PETRUCHIO": "The Taming of the Shrew",
        "LEONTES": "The Winter's Tale",
        "ISABELLA": "Measure for Measure",
        "KING RICHARD II": "Richard II",
        "KING RICHARD III": "Richard III",
        "KING HENRY VI": "Henry VI, Part 3",
    }
    for speaker, play in home.items():
        where = {p for p, sp in plays.items() for s in sp if s.speaker == speaker}
        assert where == {play}, speaker
    # The known openings: Romeo and Juliet with Sampson, the Tempest with the Master.
    assert plays["Romeo and Juliet"][0].speaker == "SAMPSON"
    assert plays["The Tempest"][0].speaker == "Master"


def test_evaluate_verbmem_knowmem_wiring(victim, corpus):
    model, tok = victim
    texts = [t.text for t in corpus.passages]
    probes = verbmem_probes(texts[:3], tok, 8)
    chunks = [texts[3] + " " + texts[4]]  # two passages: longer than the 32-token prefix
    qa = [
        {"question": t.text.split(".")[0], "answer": "x", "template": "{question}"}
        for t in corpus.passages[:2]
    ]
    got = evaluate(model, tok, EvalSplit(verbmem=probes, knowmem=qa), EvalSplit(chunks=chunks))
    new = max(len(tok(p["target"], add_special_tokens=False)["input_ids"]) for p in probes)
    assert got["forget_verbmem"] == pytest.approx(verbmem(model, tok, probes, max_new_tokens=new))
    assert got["forget_knowmem"] == pytest.approx(knowmem(model, tok, qa, template="{question}"))
    chunk_probes = verbmem_probes(chunks, tok, CHUNK_PREFIX_TOKENS)
    assert len(chunk_probes) == 1
    assert got["retain_verbmem"] == pytest.approx(
        verbmem(
            model,
            tok,
            chunk_probes,
            max_new_tokens=max(
                len(tok(p["target"], add_special_tokens=False)["input_ids"]) for p in chunk_probes
            ),
        )
    )
    # The memorised victim reproduces its passages: VerbMem near 1 (its README: 1.00 at 8 tokens).
    assert got["forget_verbmem"] > 0.9
    assert "retain_knowmem" not in got  # no questions, no metric


def test_muse_suite_dir(tmp_path, victim, corpus):
    from genforget.evaluation.harness import build_suite_data, load_suite, run_suite, suite_forget_fingerprint

    texts = [t.text for t in corpus.passages]
    d = tmp_path / "muse"
    for sub in ("raw", "knowmem"):
        (d / sub).mkdir(parents=True)
    (d / "raw" / "forget.json").write_text(json.dumps(texts[:2]))
    (d / "raw" / "retain1.json").write_text(json.dumps(texts[2:4]))
    (d / "raw" / "retain2.json").write_text(json.dumps([{"text": texts[4]}]))
    (d / "raw" / "holdout.json").write_text(json.dumps(texts[5:7]))
    (d / "knowmem" / "forget_qa.json").write_text(json.dumps([{"question": "q1", "answer": "a1"}]))
    (d / "knowmem" / "forget_qa_icl.json").write_text(json.dumps([{"question": "q0", "answer": "a0"}]))
    (tmp_path / "suite.yaml").write_text("name: m\ndata: muse:muse\naudits: [relearn]\nany_k: 0\n")
    suite = load_suite(str(tmp_path / "suite.yaml"))
    assert suite.data == f"muse:{d.resolve()}"  # relative to the suite file
    data = build_suite_data(suite)
    assert data.forget.chunks == texts[:2] and data.retain.chunks == texts[2:5]
    assert [t["text"] for t in data.holdout.texts] == texts[5:7]
    assert data.forget.knowmem[0]["icl"] == [{"question": "q0", "answer": "a0"}]
    assert len(suite_forget_fingerprint(suite)) == 64
    report = run_suite({"victim": victim}, suite, data=data, progress=False)
    m = report["models"]["victim"]
    assert {"forget_verbmem", "retain_verbmem", "forget_knowmem", "mia_min_k_auc"} <= set(m)
    assert m["forget_verbmem"] > 0.9  # memorised passages, cut at 32 tokens


def test_best_method_and_checks():
    from genforget.demos.copyright import best_method, copyright_checks

    models = {
        "victim": {"forget_verbmem": 0.9, "retain_verbmem": 0.8, "mia_min_k_auc": 0.9},
        "oracle": {"forget_verbmem": 0.2, "retain_verbmem": 0.8, "mia_min_k_auc": 0.5},
        "a": {"forget_verbmem": 0.0, "retain_verbmem": 0.1, "mia_min_k_auc": 0.3},  # breaks the others
        "b": {"forget_verbmem": 0.24, "retain_verbmem": 0.75, "mia_min_k_auc": 0.55},
        "c": {"forget_verbmem": 0.3, "retain_verbmem": 0.8, "mia_min_k_auc": 0.6},
    }
    assert best_method(models, ["a", "b", "c"]) == "b"  # 0.75 >= 0.72; a is below 0.9x
    checks = copyright_checks(models, "b")
    assert [round(c["value"], 4) for c in checks] == [0.04, 0.9375, 0.9, 0.05]
    assert [c["ok"] for c in checks] == [True, True, True, True]
    assert [c.get("gate", True) for c in checks] == [True, True, False, False]


MINI = {
    "excerpts_per_play": 2,
    "holdout_excerpts": 2,
    "excerpt_chars": 150,
    "hidden_size": 32,
    "vocab_size": 300,
    "train_steps": 4,
    "methods": ["grad_diff", "npo"],
}


def test_copyright_demo_mini(tmp_path, capsys):
    from genforget.cli.demos import demo_main

    cfg = tmp_path / "mini.yaml"
    cfg.write_text(
        json.dumps(
            {
                **MINI,
                "output_dir": str(tmp_path / "run"),
                "max_steps": 2,
                "method_settings": {"npo": {"beta": 0.2}},
            }
        )
    )
    rc = demo_main(["copyright", "--config", str(cfg)])
    assert rc in (0, 1)  # a 4-step victim memorises nothing: the bars may fail
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(report) >= {"models", "checks", "timings", "config"}
    assert list(report["models"]) == ["victim", "oracle", "grad_diff", "npo"]
    for m in report["models"].values():
        assert {
            "forget_verbmem",
            "retain_verbmem",
            "forget_knowmem",
            "retain_knowmem",
            "mia_min_k_auc",
        } <= set(m)
    assert (
        report["config"]["unlearn"]["npo"]["beta"] == 0.2
        and "beta" not in report["config"]["unlearn"]["grad_diff"]  # NPO's field: not grad_diff's
    )
    assert report["config"]["excerpts"]["The Tempest"] == 2 and report["config"]["excerpts"]["holdout"] == 2
    assert (tmp_path / "run" / "report.png").is_file()
    # the takedown went through a kind: work deletion request that found exactly the play's excerpts
    found = report["config"]["takedown_request"]
    assert found["request"] == "kind: work" and found["precision"] == 1.0 and found["recall"] == 1.0
    assert found["records"] == 2 and found["span_coverage"] > 0.9
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## Takedown of The Tempest" in md
    # No excerpt text leaks into the report (privacy rule: numbers and names only).
    assert "PROSPERO:" not in json.dumps(report) and "PROSPERO:" not in md
    # Second run: victim and oracle come from the cache.
    demo_main(["copyright", "--config", str(cfg), "--methods", "npo"])
    assert "cached in" in capsys.readouterr().out


def test_copyright_demo_usage_errors(tmp_path, capsys):
    from genforget.cli.demos import demo_main

    out = tmp_path / "run"
    assert demo_main(["copyright", "--output_dir", str(out), "--methods", "esd"]) == 2
    assert "not LM methods" in capsys.readouterr().err
    assert demo_main(["copyright", "--output_dir", str(out), "--takedown", "Hamlet"]) == 2
    assert "takedown must be one of" in capsys.readouterr().err
    assert not out.exists()


def test_every_method_means_every_method_that_runs_on_excerpts(capsys):
    """An empty ``methods`` ran ``dpo`` too, which needs a preferred answer on each record and
    crashed the full-size demo: it is left out and named; asked for by name it is a usage error."""
    from genforget.config import UnlearnConfig, UsageError
    from genforget.demos.copyright import lm_methods, method_configs
    from genforget.demos.options import CopyrightDemoArgs

    cfgs = method_configs(CopyrightDemoArgs(), UnlearnConfig(method="npo"))
    assert "dpo" in lm_methods() and "dpo" not in cfgs
    assert {"npo", "grad_diff", "idk_dpo", "rmu"} <= set(cfgs)
    assert "not run: dpo (needs chosen" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"\['dpo'\] need fields"):
        method_configs(CopyrightDemoArgs(methods=["npo", "dpo"]), UnlearnConfig(method="npo"))
