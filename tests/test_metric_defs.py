"""Metric definitions (shared METRICS.md) checked against values computed by hand on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import ks_2samp

from genforget.evaluation.metrics import likelihood, mia, text, truth
from genforget.evaluation.metrics.registry import METRIC_INFO, metric_info, register_metric

LN2 = math.log(2)


def test_truth_ratio_and_stats() -> None:
    # TR = exp(L_para - mean L_pert) = exp(1.0 - (2.0 + 3.0) / 2) = exp(-1.5)
    assert truth.truth_ratio(1.0, [2.0, 3.0]) == pytest.approx(math.exp(-1.5))
    # min(TR, 1/TR): 0.5, 0.5, 1.0 -> mean 2/3
    assert truth.forget_truth_ratio_stat([0.5, 2.0, 1.0]) == pytest.approx(2 / 3)
    # max(0, 1 - TR): 0.75, 0, 0.5 -> mean 1.25 / 3
    assert truth.retain_truth_ratio_stat([0.25, 1.5, 0.5]) == pytest.approx(1.25 / 3)
    with pytest.raises(ValueError):
        truth.truth_ratio(1.0, [])


def test_forget_quality_ks() -> None:
    # n = m = 2, fully separated: D = 1, reached by 2 of the C(4, 2) = 6 orderings -> p = 1/3
    assert truth.forget_quality([1.0, 2.0], [3.0, 4.0]) == pytest.approx(1 / 3)
    a, b = [0.1, 0.9, 0.3, 1.7, 0.45], [0.2, 0.5, 1.1, 2.3, 0.8, 0.05]
    assert truth.forget_quality(a, b) == pytest.approx(ks_2samp(a, b).pvalue)
    assert truth.forget_quality(a, a) == pytest.approx(1.0)
    assert truth.forget_quality([float(i) for i in range(50)], [100.0 + i for i in range(50)]) < 0.05
    # KS uses ranks only: TR and 1/TR (TOFU's code uses the latter) give the same p-value
    assert truth.forget_quality([1 / x for x in a], [1 / x for x in b]) == pytest.approx(
        ks_2samp(a, b).pvalue
    )


def test_model_utility_and_normalised_probability() -> None:
    # harmonic mean of 0.5, 0.25, 1.0 = 3 / (2 + 4 + 1) = 3/7
    assert truth.model_utility([0.5, 0.25, 1.0]) == pytest.approx(3 / 7)
    assert truth.model_utility([0.5, 0.0, 1.0]) == 0.0
    for bad in ([], [0.5, -0.1]):
        with pytest.raises(ValueError):
            truth.model_utility(bad)
    # 0.6 / (0.6 + 0.2 + 0.2) = 0.6
    assert truth.normalised_probability(0.6, [0.2, 0.2]) == pytest.approx(0.6)


def test_exact_memorisation_and_extraction_strength() -> None:
    y = [1, 2, 3, 4]
    # matches at positions 0 and 2 -> 2/4
    assert text.exact_memorisation([1, 9, 3, 9], y) == pytest.approx(0.5)
    assert text.exact_memorisation(torch.tensor([1, 2, 3, 9]), torch.tensor(y)) == pytest.approx(0.75)
    assert text.extraction_strength(y, y) == pytest.approx(1.0)  # k* = 0
    assert text.extraction_strength([9, 2, 3, 4], y) == pytest.approx(0.75)  # k* = 1 -> 1 - 1/4
    assert text.extraction_strength([1, 9, 3, 4], y) == pytest.approx(0.5)  # k* = 2 -> 1 - 2/4
    assert text.extraction_strength([9, 9, 9, 4], y) == pytest.approx(0.25)  # only last: k* = 3 -> 1/len
    # last token wrong: no suffix matches, k* = len -> 0 (not 1/len), even with a 3/4 EM prefix
    assert text.extraction_strength([1, 2, 3, 9], y) == 0.0
    with pytest.raises(ValueError):
        text.extraction_strength([1, 2], y)


def test_rouge_l() -> None:
    # LCS("the cat lay on a red mat", "the cat sat on the mat") = "the cat on mat" = 4 tokens
    # recall = 4/6, precision = 4/7, f1 = 2PR/(P+R) = (16/21) / (26/21) = 8/13
    r = text.rouge_l("the cat lay on a red mat", "the cat sat on the mat")
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(8 / 13)
    # Porter stemmer (words > 3 chars): cats -> cat, running/runs -> run, so LCS = 2/2
    assert text.rouge_l("cat runs", "cats running")["recall"] == pytest.approx(1.0)


def test_degeneration() -> None:
    assert text.is_degenerate("")
    assert text.is_degenerate("   \n")
    assert text.is_degenerate("the the the the the")  # one word = 5/5 of the words
    # "a" is only 4/8 = 0.5 of the words (not > 0.5), but 4 of the 6 trigrams repeat -> 2/3 > 0.5
    assert text.is_degenerate("a b a b a b a b")
    assert not text.is_degenerate("The quick brown fox jumps over the lazy dog.")
    assert not text.is_degenerate("hi hi")  # under 4 words and no trigram
    texts = [
        "",
        "the the the the the",
        "The quick brown fox jumps over the lazy dog.",
        "Alice lives in Paris.",
    ]
    assert text.degeneration_rate(texts) == pytest.approx(2 / 4)


def test_loss_zlib_reference_scores() -> None:
    lp = torch.tensor([-1.0, -3.0])
    assert mia.loss_score(lp) == pytest.approx(2.0)  # mean NLL = (1 + 3) / 2
    # zlib.compress(b"a") = 2 header + 3 deflate + 4 adler32 = 9 bytes -> 2.0 / 9
    assert mia.zlib_score(lp, "a") == pytest.approx(2.0 / 9)
    # L_target - L_ref = 1.5 - (0.5 + 0.5 + 2) / 3
    assert mia.reference_score(torch.tensor([-1.0, -2.0]), torch.tensor([-0.5, -0.5, -2.0])) == pytest.approx(
        0.5
    )
    # re-exported from likelihood: min-k% of [-1, -3] at k = 0.5 -> lowest 1 -> 3.0; separable AUC = 1
    assert mia.min_k_score is likelihood.min_k_score and mia.mia_auc is likelihood.mia_auc
    assert mia.min_k_score(lp, k=0.5) == pytest.approx(3.0)
    assert mia.mia_auc([1.0, 2.0], [3.0, 4.0]) == pytest.approx(1.0)


def test_min_k_pp() -> None:
    # rows 0, 1: logits [ln2, 0, 0] -> p = [1/2, 1/4, 1/4]; mu = -(1/2 ln2 + 1/2 * 2 ln2) = -1.5 ln2,
    #   E[(log p)^2] = 1/2 ln2^2 + 1/2 * 4 ln2^2 = 2.5 ln2^2 -> sigma = sqrt(2.5 - 2.25) ln2 = 0.5 ln2
    # row 2: logits [0, 0, -inf] -> p = [1/2, 1/2, 0]; mu = -ln2, sigma = 0 (floored at eps)
    logits = torch.tensor([[LN2, 0.0, 0.0], [LN2, 0.0, 0.0], [0.0, 0.0, -math.inf]])
    targets = torch.tensor([0, 1, 0])
    mu, sigma = mia.token_mu_sigma(logits)
    assert mu.tolist() == pytest.approx([-1.5 * LN2, -1.5 * LN2, -LN2], rel=1e-6)
    assert sigma.tolist() == pytest.approx([0.5 * LN2, 0.5 * LN2, 0.0], abs=1e-6)
    lp = torch.log_softmax(logits, -1)[torch.arange(3), targets]
    assert lp.tolist() == pytest.approx([-LN2, -2 * LN2, -LN2], rel=1e-6)
    # z = (-ln2 + 1.5 ln2) / (0.5 ln2) = 1, (-2 ln2 + 1.5 ln2) / (0.5 ln2) = -1, 0 / eps = 0
    # k = 0.4: int(1.2) = 1 lowest -> -(-1) = 1; k = 0.7: 2 lowest (-1, 0) -> 0.5; k = 1: -mean = 0
    assert mia.min_k_pp_score(lp, mu, sigma) == pytest.approx(1.0, rel=1e-5)
    assert mia.min_k_pp_score(lp, mu, sigma, k=0.7) == pytest.approx(0.5, rel=1e-5)
    assert mia.min_k_pp_score(lp, mu, sigma, k=1.0) == pytest.approx(0.0, abs=1e-5)


def test_privleak() -> None:
    assert mia.privleak(0.6, 0.5) == pytest.approx(20.0)  # (0.6 - 0.5) / 0.5 * 100
    # MUSE orientation is 1 - mia_auc: members still perfectly recognised (mia_auc = 1.0) vs a
    # retrain model at 0.5 -> (0 - 0.5) / 0.5 * 100 = -100, "under-unlearned" as METRICS.md reads it
    auc_unlearned = mia.mia_auc([1.0, 2.0], [3.0, 4.0])
    assert mia.privleak(1 - auc_unlearned, 1 - 0.5) == pytest.approx(-100.0)


def test_registry() -> None:
    assert len(METRIC_INFO) >= 23
    assert metric_info("forget_quality").higher_is_better is True
    assert metric_info("forget_pii_extraction").higher_is_better is False
    assert all(metric_info(n).higher_is_better is None for n in METRIC_INFO if n.startswith("mia_"))
    with pytest.raises(ValueError, match="Did you mean 'forget_quality'"):
        metric_info("forget_qualty")
    with pytest.raises(ValueError, match="already registered"):
        register_metric("privleak", None, "dup")
