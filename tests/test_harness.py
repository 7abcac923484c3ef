"""The eval harness: suites, cross-model metrics (forget quality, PrivLeak), audits, reports."""

from __future__ import annotations

import json
import re

import pytest
from conftest import unlearn_corpus

import genforget
from genforget.cli import eval_main
from genforget.evaluation.harness import Suite, build_suite_data, load_suite, run_suite
from genforget.evaluation.metrics.registry import METRIC_INFO

QUICK = Suite(name="quick", n_people=20, n_passages=10, forget_frac=0.2, any_k=2, relearn_steps=5)


@pytest.fixture(scope="module")
def unlearned_dir(victim_dir, corpus, tmp_path_factory):
    from genforget.adapters import save_model

    model, tok = genforget.load_model(victim_dir)
    out = unlearn_corpus(
        model, tok, corpus, calibrated=True, method="npo", beta=0.02, learning_rate=1e-3, max_steps=300
    )
    path = tmp_path_factory.mktemp("unlearned") / "unlearned"
    save_model(out, tok, path)
    return path


@pytest.fixture(scope="module")
def report(victim_dir, unlearned_dir, oracle_dir):
    models = {
        n: genforget.load_model(d)
        for n, d in (("victim", victim_dir), ("unlearned", unlearned_dir), ("oracle", oracle_dir))
    }
    return run_suite(models, QUICK, method="npo", progress=False)


def test_suites_load_and_reject_bad_keys(tmp_path):
    assert load_suite("pii").n_people == 200 and load_suite("quick").n_people == 20
    bad = tmp_path / "s.yaml"
    bad.write_text("audit: [relearn]\n")
    with pytest.raises(ValueError, match="Did you mean 'audits'"):
        load_suite(str(bad))
    with pytest.raises(ValueError, match="unknown audit"):
        Suite(audits=["quant3"])
    with pytest.raises(FileNotFoundError, match="available: .*pii"):
        load_suite("nope")


def test_every_reported_metric_is_registered(report):
    for metrics in report["models"].values():
        for key in metrics:
            base = re.sub(r"_pii_extraction_\w+$", "_pii_extraction", key)
            base = re.sub(r"_any_\d+$", "_any_k", base)
            assert base in METRIC_INFO, f"{key} has no registry entry (higher_is_better)"


def test_forget_quality_separates_memorised_from_never_seen(report, victim_dir, oracle_dir, oracle2_dir):
    assert report["models"]["victim"]["forget_quality"] < 0.05
    second = run_suite(
        {n: genforget.load_model(d) for n, d in (("oracle2", oracle2_dir), ("oracle", oracle_dir))},
        Suite(n_people=20, n_passages=10, forget_frac=0.2, any_k=0, audits=[]),
        progress=False,
    )
    assert second["models"]["oracle2"]["forget_quality"] >= 0.05


def test_membership_and_privleak(report):
    m = report["models"]
    assert m["victim"]["mia_min_k_auc"] >= 0.8
    # 24 vs 24 texts from a 20-person fixture: a noisy estimate (measured 0.75 on one corpus
    # draw); the demo corpus meets the tighter bar (within 0.1 of 0.5: 0.46).
    assert abs(m["oracle"]["mia_min_k_auc"] - 0.5) <= 0.3
    for k in ("mia_loss_auc", "mia_zlib_auc", "mia_min_k_pp_auc", "mia_reference_auc"):
        assert 0.0 <= m["unlearned"][k] <= 1.0
    # Victim: still member-like, so large negative PrivLeak (MUSE orientation).
    assert m["victim"]["privleak"] < -30
    assert abs(m["unlearned"]["privleak"]) < abs(m["victim"]["privleak"])


def test_audits_report_recovered_extraction(report):
    audits = report["audits"]["unlearned"]
    assert set(audits) == {"relearn", "quant8", "quant4", "paraphrase"}
    for name in ("quant8", "quant4", "paraphrase"):
        assert 0.0 <= audits[name]["forget_pii_extraction"] <= 1.0
        assert audits[name]["recovered_share"] is not None
    assert "held_out_forget_pii_extraction" in audits["relearn"]
    assert (
        audits["relearn"]["attack_slice_forget_pii_extraction"]
        >= audits["relearn"]["held_out_forget_pii_extraction"]
    )


def test_tofu_suite_data_from_packaged_files():
    data = build_suite_data(Suite(data="tofu:builtin", forget_split="forget01", audits=[]))
    assert len(data.forget.qa) == 40 and len(data.forget.truth_items) == 40
    assert len(data.holdout.texts) == 40 and set(data.general) == {"real_authors", "world_facts"}
    assert len(data.paraphrase.qa) == 40


def test_make_eval_writes_three_reports_without_pii(unlearned_dir, oracle_dir, victim_dir, corpus, tmp_path):
    out = tmp_path / "eval"
    argv = [
        "--model",
        str(unlearned_dir),
        "--suite",
        "quick",
        "--oracle",
        str(oracle_dir),
        "--victim",
        str(victim_dir),
        "--output_dir",
        str(out),
    ]
    assert eval_main(argv) == 0
    for f in ("report.json", "report.md", "report.png", "tradeoff.png"):
        assert (out / f).stat().st_size > 0
    data = json.loads((out / "report.json").read_text())
    assert (
        set(data["models"]) == {"victim", "unlearned", "oracle"} and "relearn" in data["audits"]["unlearned"]
    )
    assert "## Robustness audits" in (out / "report.md").read_text()
    blobs = [p.read_bytes() for p in out.iterdir()]
    leaked = [v for v in corpus.pii_values("forget") if any(v.encode() in b for b in blobs)]
    assert leaked == []
    assert eval_main(argv) == 2  # non-empty output dir is refused


def test_suite_data_paths_resolve_from_the_suite_file_from_any_directory(tmp_path, monkeypatch):
    (tmp_path / "suites" / "data" / "tofu").mkdir(parents=True)
    (tmp_path / "suites" / "s.yaml").write_text("name: s\ndata: tofu:data/tofu\naudits: []\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert (
        load_suite(str(tmp_path / "suites" / "s.yaml")).data
        == f"tofu:{tmp_path / 'suites' / 'data' / 'tofu'}"
    )
    monkeypatch.setenv("MY_TOFU", str(tmp_path / "suites" / "data" / "tofu"))
    s = load_suite("tofu", {"data": "tofu:${MY_TOFU}", "forget_split": "forget05"})
    assert s.data == f"tofu:{tmp_path / 'suites' / 'data' / 'tofu'}" and s.forget_split == "forget05"
    assert load_suite("tofu").data == "tofu:builtin"  # the packaged copy, from anywhere
    assert load_suite("tofu", {"data": "tofu:locuslab/TOFU"}).data == "tofu:locuslab/TOFU"  # hub id


def test_set_overrides_any_key_and_names_unknown_ones():
    from genforget.evaluation.harness import parse_overrides

    s = load_suite("quick", parse_overrides(["any_k=0", "audits=[relearn]", "scoring=open_unlearning"]))
    assert s.any_k == 0 and s.audits == ["relearn"] and s.scoring == "open_unlearning"
    with pytest.raises(ValueError, match="Did you mean 'forget_split'"):
        load_suite("tofu", parse_overrides(["forgetsplit=forget05"]))
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["forget05"])
    with pytest.raises(ValueError, match="forget_split must be"):
        load_suite("tofu", {"forget_split": "forget07"})


def test_eval_refuses_a_model_unlearned_on_another_forget_set(unlearned_dir, tmp_path, capsys):
    import shutil

    from genforget.data.loaders import fingerprint
    from genforget.data.pii import build_pii_corpus
    from genforget.evaluation.harness import suite_forget_fingerprint

    model = tmp_path / "m"
    shutil.copytree(unlearned_dir, model)
    demo_forget = build_pii_corpus(200, 50, 0.1, seed=0).unlearn_examples("forget")  # the demo's
    (model / "genforget_run.json").write_text(json.dumps({"forget_sha256": fingerprint(demo_forget)}))
    argv = ["--model", str(model), "--suite", "quick", "--output_dir", str(tmp_path / "r")]
    assert eval_main(argv) == 2
    assert "another forget set" in capsys.readouterr().err and not (tmp_path / "r").exists()
    # the matching suite passes the check (the demo's own suite is pii)
    assert suite_forget_fingerprint(load_suite("pii")) == fingerprint(demo_forget)


def test_dump_examples_goes_to_its_own_marked_file(unlearned_dir, corpus, tmp_path):
    out = tmp_path / "eval"
    argv = ["--model", str(unlearned_dir), "--suite", "quick", "--output_dir", str(out)]
    argv += ["--set", "audits=[]", "any_k=0", "--dump_examples", "true"]
    assert eval_main(argv) == 0
    dump = (out / "examples.FORGET-SET-CONTENT.jsonl").read_text().splitlines()
    assert "FORGET-SET CONTENT" in json.loads(dump[0])["warning"]
    rows = [json.loads(x) for x in dump[1:]]
    assert {r["kind"] for r in rows} >= {"pii_probe", "verbatim_probe"}
    report_blobs = [p.read_bytes() for p in out.iterdir() if not p.name.startswith("examples.")]
    assert not [v for v in corpus.pii_values("forget") if any(v.encode() in b for b in report_blobs)]
