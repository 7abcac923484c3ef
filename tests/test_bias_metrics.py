"""Bias metrics against values computed by hand: the counterfactual gap and flip share (with their
signs), demographic parity on matched groups, task accuracy, outcome probabilities and the
pair benchmark's stereotype preference on a model whose next-token distribution the test fixes;
the pair loader's formats and errors."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from genforget.config import UsageError
from genforget.data.bias_pairs import load_bias_pairs
from genforget.evaluation.metrics.bias import (
    counterfactual_gap,
    decision_metrics,
    decisions,
    demographic_parity,
    flip_share,
    outcome_probabilities,
    sentence_logliks,
    stereotype_preference,
    task_accuracy,
)
from genforget.evaluation.metrics.registry import metric_info
from genforget.lm.victim import train_tokenizer


def test_counterfactual_gap_and_sign_by_hand() -> None:
    p = {"A": [0.9, 0.6, 0.2, 0.5], "B": [0.3, 0.6, 0.4, 0.5]}
    # |0.6| + 0 + |0.2| + 0 = 0.8 / 4; signed: 0.6 + 0 - 0.2 + 0 = 0.4 / 4
    out = counterfactual_gap(p)
    assert out["gap"] == pytest.approx(0.2) and out["signed"] == pytest.approx(0.1)
    # The other group favoured by as much: same gap, opposite sign.
    swapped = counterfactual_gap({"A": p["B"], "B": p["A"]})
    assert swapped["gap"] == pytest.approx(0.2) and swapped["signed"] == pytest.approx(-0.1)
    # Three values: spread max - min, no signed gap.
    three = counterfactual_gap({"A": [0.9, 0.1], "B": [0.5, 0.1], "C": [0.2, 0.4]})
    assert three["gap"] == pytest.approx((0.7 + 0.3) / 2) and "signed" not in three
    with pytest.raises(ValueError, match="same, non-zero"):
        counterfactual_gap({"A": [0.1], "B": [0.1, 0.2]})


def test_flip_share_and_sign_by_hand() -> None:
    # decisions: A = T T F F T, B = F T T F T (0.5 is a tie: negative)
    p = {"A": [0.9, 0.7, 0.5, 0.1, 0.6], "B": [0.2, 0.8, 0.51, 0.4, 0.55]}
    assert decisions(p["A"]) == [True, True, False, False, True]
    out = flip_share(p)
    # flips at 0 (A only) and 2 (B only): 2 / 5; signed (1 - 1) / 5 = 0
    assert out["share"] == pytest.approx(0.4) and out["signed"] == pytest.approx(0.0)
    p["B"][2] = 0.3  # now only A is favoured: 1 flip, signed +1/5
    assert flip_share(p) == pytest.approx({"share": 0.2, "signed": 0.2})


def test_demographic_parity_and_task_accuracy_by_hand() -> None:
    dp = demographic_parity({"A": [0.9, 0.8, 0.2, 0.6], "B": [0.9, 0.1, 0.2, 0.4]})
    # rates: A 3/4, B 1/4 -> gap 0.5, signed +0.5
    assert dp["rates"] == {"A": 0.75, "B": 0.25}
    assert dp["gap"] == pytest.approx(0.5) and dp["signed"] == pytest.approx(0.5)
    # decisions T F T F vs fair T T T F -> 3 / 4
    assert task_accuracy([0.7, 0.4, 0.51, 0.2], [True, True, True, False]) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        task_accuracy([0.5], [True, False])


@pytest.fixture(scope="module")
def word_tok():
    """A tokenizer in which " approved" and " declined" are one token each."""
    texts = ["Decision: approved. Decision: declined. The man is kind. The woman is kind."] * 50
    tok = train_tokenizer(texts, 300)
    for w in (" approved", " declined"):
        assert len(tok(w, add_special_tokens=False)["input_ids"]) == 1
    return tok


class FixedLM(torch.nn.Module):
    """Next-token distribution ``probs`` at every position, whatever the input."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.logits = probs.log()

    def forward(self, input_ids, attention_mask=None, **_):
        return SimpleNamespace(logits=self.logits.expand(*input_ids.shape, -1).clone())


def _probs(tok, weights: dict[str, float]) -> torch.Tensor:
    """A distribution with ``weights`` on the given one-token words and the rest spread evenly."""
    p = torch.full((len(tok),), 0.0)
    for w, x in weights.items():
        p[tok(w, add_special_tokens=False)["input_ids"][0]] = x
    rest = 1.0 - sum(weights.values())
    p[p == 0] = rest / int((p == 0).sum())
    return p


def test_outcome_probabilities_normalise_over_the_two_outcomes(word_tok) -> None:
    model = FixedLM(_probs(word_tok, {" approved": 0.6, " declined": 0.2}))
    pos, mass = outcome_probabilities(model, word_tok, ["Decision:", "Decision: maybe"])
    # 0.6 / (0.6 + 0.2) = 0.75 after any prompt; mass 0.8
    assert pos == pytest.approx([0.75, 0.75]) and mass == pytest.approx([0.8, 0.8])
    metrics, details = decision_metrics(
        model,
        word_tok,
        {"A": ["Decision:"], "B": ["Decision: x"]},
        labelled={"task_accuracy": (["Decision:", "Decision:"], [True, False])},
    )
    assert metrics["counterfactual_gap"] == pytest.approx(0.0)
    assert metrics["counterfactual_flip_share"] == 0.0 and metrics["decision_mass"] == pytest.approx(0.8)
    assert metrics["task_accuracy"] == pytest.approx(0.5)  # approved both times; fair: T, F
    assert details["p_positive"]["A"] == pytest.approx([0.75])


def test_stereotype_preference_by_hand(word_tok) -> None:
    probs = _probs(word_tok, {" man": 0.3, " woman": 0.1})
    model = FixedLM(probs)
    pairs = [
        {"sent_more": "The man is kind.", "sent_less": "The woman is kind.", "bias_type": "gender"},
        {"sent_more": "The woman is kind.", "sent_less": "The man is kind.", "bias_type": "gender"},
        {"sent_more": "The man is kind.", "sent_less": "The man is kind. The", "bias_type": "race-color"},
    ]
    man, woman = (word_tok(w, add_special_tokens=False)["input_ids"][0] for w in (" man", " woman"))
    ll = sentence_logliks(model, word_tok, ["The man is kind.", "The woman is kind."])
    # The sentences differ in one token: log 0.3 vs log 0.1.
    assert ll[0] - ll[1] == pytest.approx(math.log(0.3) - math.log(0.1), abs=1e-4)
    assert man != woman
    out = stereotype_preference(model, word_tok, pairs)
    # pair 1 preferred (0.3 > 0.1), pair 2 not, pair 3: the longer sent_less has one more token,
    # so under "sum" the shorter sent_more is more likely -> preferred: 2 of 3
    assert out["stereotype_preference"] == pytest.approx(2 / 3) and out["pairs"] == 3
    assert out["stereotype_preference_gender"] == pytest.approx(0.5)
    assert out["stereotype_preference_race_color"] == pytest.approx(1.0)
    # Per-token means: pair 3 compares the mean of the same tokens plus one more.
    mean = stereotype_preference(model, word_tok, pairs[:2], normalisation="mean")
    assert mean["stereotype_preference"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="normalisation"):
        sentence_logliks(model, word_tok, ["x"], normalisation="max")


def test_bias_metrics_are_registered_with_directions() -> None:
    assert metric_info("counterfactual_flip_share").higher_is_better is False
    assert metric_info("counterfactual_gap_signed").higher_is_better is None
    assert metric_info("task_accuracy").higher_is_better is True
    assert metric_info("stereotype_preference").higher_is_better is None


def test_load_bias_pairs_formats_and_errors(tmp_path) -> None:
    jl = tmp_path / "pairs.jsonl"
    jl.write_text(
        json.dumps({"sent_more": "A is bad.", "sent_less": "B is bad.", "bias_type": "nationality"})
        + "\n\n"
        + json.dumps({"stereotype": "C is slow.", "anti_stereotype": "D is slow."})
        + "\n"
    )
    pairs = load_bias_pairs(jl)
    assert pairs == [
        {"sent_more": "A is bad.", "sent_less": "B is bad.", "bias_type": "nationality"},
        {"sent_more": "C is slow.", "sent_less": "D is slow.", "bias_type": "unspecified"},
    ]
    csv = tmp_path / "crows.csv"
    csv.write_text(
        ',sent_more,sent_less,stereo_antistereo,bias_type\n0,"X, the man.",Y the man.,stereo,gender\n'
    )
    assert load_bias_pairs(csv) == [
        {"sent_more": "X, the man.", "sent_less": "Y the man.", "bias_type": "gender"}
    ]
    bad = tmp_path / "bad.jsonl"
    for line, msg in [
        ('{"sent_more": "x"}', r"bad.jsonl:1: no sentence pair; expected 'sent_more'"),
        ('{"sent_more": "x", "sent_less": "x"}', "identical"),
        ("{nope", "not valid JSON"),
        ("", "no pairs"),
    ]:
        bad.write_text(line + "\n")
        with pytest.raises(UsageError, match=msg):
            load_bias_pairs(bad)
    with pytest.raises(UsageError, match="not found"):
        load_bias_pairs(tmp_path / "missing.jsonl")


def test_pairs_through_the_harness_evaluate_and_eval_cli(tmp_path, word_tok, tiny_lm, tokenizer) -> None:
    import genforget
    from genforget.cli.eval import eval_main
    from genforget.evaluation.harness import load_suite, run_suite

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(
            {"sent_more": "The man is kind.", "sent_less": "The woman is kind.", "bias_type": "gender"}
        )
        + "\n"
        + json.dumps(
            {"sent_more": "The woman is kind.", "sent_less": "The man is kind.", "bias_type": "gender"}
        )
        + "\n"
        + json.dumps({"sent_more": "The man is kind.", "sent_less": "The man is kind. The"})
        + "\n"
    )
    model = FixedLM(_probs(word_tok, {" man": 0.3, " woman": 0.1}))
    suite = load_suite("bias_pairs", {"bias_pairs": str(pairs)})
    report = run_suite({"m": (model, word_tok)}, suite, progress=False)
    assert report["models"]["m"]["stereotype_preference"] == pytest.approx(2 / 3)
    assert report["models"]["m"]["stereotype_preference_gender"] == pytest.approx(0.5)
    assert report["details"]["bias_pairs"]["pairs"] == 3
    got = genforget.evaluate(model, word_tok, [], bias_pairs=str(pairs))
    assert got["stereotype_preference"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="bias_pairs only"):
        load_suite("bias_pairs")
    # From the command line, on a saved model: the report holds the same number as the API.
    tiny_lm.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    out = tmp_path / "report"
    argv = ["--model", str(tmp_path / "model"), "--suite", "bias_pairs", "--set", f"bias_pairs={pairs}"]
    assert eval_main([*argv, "--output_dir", str(out)]) == 0
    saved = json.loads((out / "report.json").read_text())["models"]["model"]
    direct = stereotype_preference(tiny_lm, tokenizer, load_bias_pairs(pairs))["stereotype_preference"]
    assert saved["stereotype_preference"] == pytest.approx(direct)
