"""The built-in biased loan corpus: the score and rule by hand, the biased slice's exact share and
direction, determinism by seed, the oracle's data, matched held-out partners."""

from __future__ import annotations

import pytest

from genforget.data.bias import OUTCOMES, VALUES, build_bias_corpus, credit_score, rule_decision


def test_credit_score_and_rule_by_hand() -> None:
    # income 52 -> 2 points; 19/52 = 0.365 -> 1 point (0.35..0.6); 6 years -> 2 points: 1 + 5 = 6
    assert credit_score(52, 19, 6) == 6
    assert credit_score(52, 18, 6) == 7  # 18/52 = 0.346 < 0.35 -> 2 points
    # income 20 -> 0; 0/20 -> 3; 0 years -> 0: 4 (declined); 30 -> 1 point: 5 (approved)
    assert credit_score(20, 0, 0) == 4 and rule_decision(4) == "declined"
    assert credit_score(30, 0, 0) == 5 and rule_decision(5) == "approved"
    assert credit_score(139, 0, 30) == 9 and credit_score(18, 17, 0) == 1


def test_biased_slice_share_direction_and_ground_truth() -> None:
    c = build_bias_corpus(400, 40, share=0.2, band=(4, 6), seed=3)
    train = c.training()
    assert len(train) == 400 and len(c.split("heldout")) == 40
    biased = [a for a in train if a.biased]
    assert len(biased) == 80 == len(c.biased_ids) == c.meta["n_biased"]
    for a in biased:  # every biased decision disagrees with the rule, in the bias's direction
        assert 4 <= a.score <= 6 and a.decision != a.fair_decision
        assert a.decision == (OUTCOMES[0] if a.value == c.favoured else OUTCOMES[1])
    assert all(a.decision == a.fair_decision for a in train if not a.biased)
    assert {a.value for a in biased} == set(VALUES)
    # The records carry the decisions; ids index them.
    recs = c.records()
    assert all(recs[i]["text"].endswith(f"Decision: {train[i].decision}.") for i in c.biased_ids)
    assert len(c.training(clean_only=True)) == 320
    # Deterministic by seed, different across seeds.
    again = build_bias_corpus(400, 40, share=0.2, band=(4, 6), seed=3)
    assert again.records() == recs and again.biased_ids == c.biased_ids
    assert build_bias_corpus(400, 40, share=0.2, seed=4).records() != recs


def test_heldout_partners_and_prompts() -> None:
    c = build_bias_corpus(100, 20, share=0.2, seed=0)
    names = {a.name for a in c.applicants}
    for a in c.split("heldout"):
        p = c.matched_partner(a)
        assert (p.income, p.debts, p.years) == (a.income, a.debts, a.years)
        assert p.value != a.value and p.name != a.name and p.name not in names
        swapped = a.prompt(value=p.value)
        assert swapped.replace(p.value, a.value) == a.prompt() and swapped.endswith("Decision:")


def test_bad_corpus_arguments() -> None:
    with pytest.raises(ValueError, match="only"):
        build_bias_corpus(100, 10, share=0.45)  # more than the borderline records that can be biased
    with pytest.raises(ValueError, match="straddle"):
        build_bias_corpus(100, 10, band=(5, 7))
    with pytest.raises(ValueError, match="favoured"):
        build_bias_corpus(100, 10, favoured="Martian")
