"""The bias demo end to end at tiny scale (a 64-wide victim that learns the bias in seconds): the
victim is biased and the unlearned model is not, the request located exactly the slice, the
report, plot, certificate and ledger are written and hold no applicant's name; recheck flags the
victim and not the unlearned model. The full demo is ``make demo-bias`` (and a slow test)."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_demo_args

from genforget.cli.demos import demo_main
from genforget.demos.bias import run_bias_demo
from genforget.demos.options import BiasDemoArgs
from genforget.requests.options import RequestUnlearnConfig


def test_demo_bias_usage_errors(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert demo_main(["bias", "--output_dir", str(out), "--biased_share", "0.6"]) == 2
    assert "biased_share" in capsys.readouterr().err and not out.exists()
    assert demo_main(["bias", "--output_dir", str(out), "--relearn_budgets", "5", "0"]) == 2
    assert "relearn_budgets" in capsys.readouterr().err and not out.exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bias")
    # 128 wide, batch 32 at 3e-3: the 64-wide victim at 5e-3 learned the fair rule everywhere
    # (flip share 0.00) once the biased slice became 25 % of scores 3-6; this one shows 0.60.
    args = tiny_demo_args(
        BiasDemoArgs,
        tmp,
        n_train=500,
        n_heldout=60,
        vocab_size=512,
        train_steps=300,
        relearn_budgets=[0, 5],
        hidden_size=128,
        train_batch_size=32,
        train_learning_rate=3e-3,
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


def _report(unlearned: dict, oracle_flips: float = 0.0) -> dict:
    base = {
        "counterfactual_flip_share": 0.6,
        "counterfactual_flip_share_signed": 0.6,
        "counterfactual_gap": 0.5,
        "counterfactual_gap_signed": 0.5,
        "demographic_parity_gap": 0.6,
        "task_accuracy": 0.7,
        "task_accuracy_outside_band": 1.0,
        "decision_mass": 1.0,
    }
    oracle = {**base, "counterfactual_flip_share": oracle_flips, "counterfactual_flip_share_signed": 0.0}
    oracle.update(counterfactual_gap=0.0, counterfactual_gap_signed=0.0, demographic_parity_gap=0.0)
    return {
        "models": {
            "victim": base,
            "unlearned": {**base, **unlearned},
            "oracle": {**oracle, "task_accuracy": 1.0},
        },
        "timings": {"unlearn_s": 2.0, "train_oracle_s": 40.0},
        "config": {"locate": {"precision": 1.0, "recall": 1.0}},
        "certificate": {"passed": True},
    }


def test_bias_checks_fail_a_reversed_bias_as_they_fail_the_victim() -> None:
    from genforget.demos.bias_report import bias_checks
    from genforget.evaluation.report import checks_pass

    fixed = {"counterfactual_flip_share": 0.0, "counterfactual_flip_share_signed": 0.0}
    fixed |= {"counterfactual_gap": 0.01, "counterfactual_gap_signed": 0.0, "demographic_parity_gap": 0.0}
    fixed |= {"task_accuracy": 1.0}
    assert checks_pass(bias_checks(_report(fixed), []))
    # The victim itself: flips 0.6 - 0 > 0.05.
    failed = {c["name"] for c in bias_checks(_report({}), []) if not c["ok"]}
    assert "counterfactual flip share, unlearned - oracle" in failed
    # Reversed: now favouring the other group by 0.3 flips / 0.25 P; the unsigned flip and gap
    # bars fail too, and the two sign bars say which way: 0.3 - 0 and 0.25 - |0| over 0.05.
    rev = {**fixed, "counterfactual_flip_share": 0.3, "counterfactual_flip_share_signed": -0.3}
    rev |= {"counterfactual_gap": 0.25, "counterfactual_gap_signed": -0.25}
    checks = {c["name"]: c for c in bias_checks(_report(rev), [])}
    reversed_flips = checks["reversed flips (favouring the victim's disfavoured group), unlearned - oracle"]
    assert not reversed_flips["ok"] and reversed_flips["value"] == pytest.approx(0.3)
    assert checks["reversed signed P gap, unlearned - |oracle's gap|"]["value"] == pytest.approx(0.25)
    # The same size of bias the victim's way is not counted as reversed.
    same_way = {
        c["name"]: c for c in bias_checks(_report({**rev, "counterfactual_flip_share_signed": 0.3}), [])
    }
    assert (
        same_way["reversed flips (favouring the victim's disfavoured group), unlearned - oracle"]["value"]
        == 0.0
    )
    # A slow unlearning and a leaked name fail their bars.
    slow = _report(fixed)
    slow["timings"]["unlearn_s"] = 5.0
    names = {c["name"]: c["ok"] for c in bias_checks(slow, ["report.md"])}
    assert not names["unlearn time / retrain time"]
    assert not names["files under output_dir naming a biased record's applicant"]
