"""TOFU-style knowledge metrics: truth ratio, forget quality, model utility.

Definitions: docs/metrics.md ("truth ratio (TR)", "forget quality (FQ)", "model utility");
Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs".
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def truth_ratio(paraphrased_nll: float, perturbed_nlls: Sequence[float]) -> float:
    """TR = p_pert / p_para = exp(L_para − mean_i L_pert_i).

    ``L`` are mean token NLLs of the answers given the question. p_pert is the geometric mean of
    the wrong answers' per-token probabilities, so TR < 1 means the paraphrased true answer is
    preferred; a model that knows nothing about the question gives TR ≈ 1.
    """
    if not perturbed_nlls:
        raise ValueError("no perturbed answers")
    return math.exp(paraphrased_nll - sum(perturbed_nlls) / len(perturbed_nlls))


def _mean(xs: list[float]) -> float:
    if not xs:
        raise ValueError("no truth ratios")
    return sum(xs) / len(xs)


def forget_truth_ratio_stat(trs: Sequence[float]) -> float:
    """Forget-set TR statistic: mean of min(TR, 1/TR), in (0, 1]; 1 = no preference either way."""
    return _mean([min(tr, 1.0 / tr) for tr in trs])


def retain_truth_ratio_stat(trs: Sequence[float]) -> float:
    """Retain/general-set TR statistic: mean of max(0, 1 − TR); higher = true answers preferred."""
    return _mean([max(0.0, 1.0 - tr) for tr in trs])


def forget_quality(trs_model: Sequence[float], trs_retain_model: Sequence[float]) -> float:
    """FQ: two-sample KS-test p-value between per-example forget-set TRs of the unlearned model
    and of the retain model (trained without the forget set). FQ >= 0.05: indistinguishable.

    The KS statistic depends only on the ranks of the pooled samples, so passing TR or 1/TR
    (TOFU's own code computes exp(L_pert − L_para), i.e. 1/TR) gives the same p-value.
    """
    from scipy.stats import ks_2samp  # lazily: scipy.stats is slow to import

    return float(ks_2samp(list(trs_model), list(trs_retain_model)).pvalue)


def model_utility(values: Sequence[float]) -> float:
    """TOFU model utility: harmonic mean of the (9) utility numbers; 0 if any of them is 0.

    The harmonic mean punishes any single collapsed capability, which is why TOFU uses it.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    if any(v < 0 for v in vals):
        raise ValueError(f"negative value in {vals}: model utility takes probabilities/ratios")
    # hmean's limit at 0 is 0; say so directly rather than rely on scipy's zero handling.
    if any(v == 0 for v in vals):
        return 0.0
    from scipy.stats import hmean

    return float(hmean(vals))


def normalised_probability(p_correct: float, p_wrong: Sequence[float]) -> float:
    """TOFU general-set probability: p_correct / (p_correct + Σ p_wrong).

    Each p is exp(−mean token NLL) of an answer; normalising over the answer options removes
    the effect of answers' lengths and of the question's overall likelihood.
    """
    return p_correct / (p_correct + sum(p_wrong))
