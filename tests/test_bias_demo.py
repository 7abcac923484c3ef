"""The bias demo end to end at tiny scale (a 64-wide victim that learns the bias in seconds): the
victim is biased and the unlearned model is not, the request located exactly the slice, the
report, plot, certificate and ledger are written and hold no applicant's name; recheck flags the
victim and not the unlearned model. The full demo is ``make demo-bias`` (and a slow test)."""

from __future__ import annotations

import json

import pytest

from genforget.cli.demos import demo_main
from genforget.demos.bias import BiasDemoArgs, run_bias_demo
from genforget.requests.pipeline import RequestUnlearnConfig


def test_demo_bias_usage_errors(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert demo_main(["bias", "--output_dir", str(out), "--biased_share", "0.6"]) == 2
    assert "biased_share" in capsys.readouterr().err and not out.exists()
    assert demo_main(["bias", "--output_dir", str(out), "--relearn_budgets", "5", "0"]) == 2
    assert "relearn_budgets" in capsys.readouterr().err and not out.exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bias")
    args = BiasDemoArgs(
        output_dir=str(tmp / "run"),
        data_path=str(tmp / "data" / "train.jsonl"),
        n_train=500,
        n_heldout=60,
        hidden_size=64,
        vocab_size=512,
        train_steps=300,
        train_batch_size=16,
        train_learning_rate=5e-3,
        relearn_budgets=[0, 5],
    )
    ucfg = RequestUnlearnConfig(
        method="npo", learning_rate=5e-4, retain_weight=30.0, beta=0.05, max_steps=60, calibration_every=2
    )
    return tmp, args, run_bias_demo(args, ucfg)


def test_tiny_bias_demo(tiny_run) -> None:
    tmp, args, report = tiny_run
    run = tmp / "run"
    saved = json.loads((run / "report.json").read_text())
    v, u, o = (saved["models"][k] for k in ("victim", "unlearned", "oracle"))
    assert v["counterfactual_flip_share"] >= 0.3 and v["counterfactual_gap_signed"] > 0.2
    assert u["counterfactual_flip_share"] <= o["counterfactual_flip_share"] + 0.05
    assert u["task_accuracy"] > v["task_accuracy"]
    assert saved["config"]["locate"]["precision"] == saved["config"]["locate"]["recall"] == 1.0
    assert len(saved["relearn"]["curves"]["unlearned"]) == 2
    checks = {c["name"]: c for c in saved["checks"]}
    assert checks["files under output_dir naming a biased record's applicant"]["value"] == 0.0
    assert {"victim", "unlearned", "oracle"} == set(saved["bias"]["p_approved_by_score"])
    assert "## Bias (held-out applicants)" in (run / "report.md").read_text()
    assert (run / "bias.png").stat().st_size > 10_000 and (run / "forget" / "certificate.json").is_file()


def test_tiny_bias_demo_ledger_and_recheck(tiny_run, capsys) -> None:
    from genforget.cli.main import main

    tmp, args, _ = tiny_run
    run = tmp / "run"
    assert main(["ledger", "verify", str(run / "ledger.jsonl")]) == 0
    reqs = tmp / "requests"
    reqs.mkdir()
    (reqs / "bias.yaml").write_text((run / "request.yaml").read_text())
    base = [
        "recheck",
        "--ledger",
        str(run / "ledger.jsonl"),
        "--requests",
        str(reqs),
        "--data",
        args.data_path,
    ]
    capsys.readouterr()
    assert main([*base, "--model", str(run / "victim"), "--key_file", str(run / "controller.key")]) == 1
    assert "biased again: bias.yaml" in capsys.readouterr().err
    assert (
        main([*base, "--model", str(run / "forget" / "model"), "--key_file", str(run / "controller.key")])
        == 0
    )
    assert "counterfactual flip share" in capsys.readouterr().out


@pytest.mark.slow
def test_full_bias_demo_passes_its_checks(tmp_path) -> None:
    """``make demo-bias`` as shipped (about 2 minutes of CPU time)."""
    code = demo_main(
        [
            "bias",
            "--config",
            "recipes/configs/demo_bias.yaml",
            "--output_dir",
            str(tmp_path / "run"),
            "--data_path",
            str(tmp_path / "data" / "train.jsonl"),
        ]
    )
    assert code == 0
