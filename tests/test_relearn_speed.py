"""Relearn-speed audit: curves over a ladder of relearning budgets, the gap to the oracle, report."""

from __future__ import annotations

import pytest
import torch

import genforget
from genforget.evaluation.audits.relearn_speed import curve_gap, relearn_curve
from genforget.evaluation.harness import Suite, run_suite
from genforget.evaluation.report import write_report
from genforget.evaluation.split import EvalSplit


def test_curve_gap_by_hand():
    # gaps 0, .2, .4 at steps 0, 5, 15: trapezoids (0 + .2)/2 * 5 + (.2 + .4)/2 * 10 = 3.5, / 15
    g = curve_gap([0.0, 0.2, 0.6], [0.0, 0.0, 0.2], [0, 5, 15])
    assert g["area"] == pytest.approx(3.5 / 15)
    assert g["max_gap"] == pytest.approx(0.4) and g["max_gap_at"] == 15
    assert curve_gap([0.5], [0.1], [0])["area"] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        curve_gap([0.1, 0.2], [0.1], [0, 5])


def test_relearn_curve_measures_a_copy_at_each_cumulative_budget(victim, corpus):
    model, tok = victim
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen_steps = []

    def measure(m):
        seen_steps.append(sum(p.sum().item() for p in m.parameters()))
        return float(len(seen_steps))

    curve = relearn_curve(model, tok, corpus.full_text_examples("forget"), measure, [0, 2, 5], batch_size=4)
    assert curve == [1.0, 2.0, 3.0]
    assert len(set(seen_steps)) == 3  # weights moved between the measurements
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # original untouched
    with pytest.raises(ValueError, match="ascending"):
        relearn_curve(model, tok, corpus.full_text_examples("forget"), measure, [5, 0])


def test_suite_reports_relearn_curves_gap_and_plot(victim_dir, oracle_dir, tmp_path):
    models = {n: genforget.load_model(d) for n, d in (("victim", victim_dir), ("oracle", oracle_dir))}
    suite = Suite(
        n_people=20,
        n_passages=10,
        forget_frac=0.2,
        any_k=0,
        audits=["relearn_speed"],
        relearn_budgets=[0, 4, 8],
    )
    report = run_suite(models, suite, progress=False)
    sp = report["relearn_speed"]
    assert sp["metric"] == "forget_pii_extraction" and sp["budgets"] == [0, 4, 8]
    assert sp["curves"]["oracle"][0] == pytest.approx(report["models"]["oracle"]["forget_pii_extraction"])
    assert sp["curves"]["victim"][0] >= 0.8 and sp["curves"]["oracle"][0] <= 0.1
    # the victim knows the forget people throughout: far above the never-trained oracle
    assert sp["gap_to_oracle"]["victim"]["area"] > 0.5
    paths = write_report(report, tmp_path / "r")
    assert paths["relearn_speed"].stat().st_size > 0
    assert "## Relearn speed" in paths["md"].read_text()


def test_relearn_speed_split_is_light(victim, corpus):
    # the audit probes only extraction (no truth ratios or texts): check the split it builds
    sp = EvalSplit(pii_probes=corpus.pii_probes("forget"))
    assert genforget.evaluate(victim[0], victim[1], sp)["forget_pii_extraction"] >= 0.8
