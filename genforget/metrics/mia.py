"""Membership-inference scores and PrivLeak: the one place to read the project's MIA code.

Every score is loss-like (lower = more member-like), so all of them plug into :func:`mia_auc`.
Definitions: shared METRICS.md ("Membership inference", "PrivLeak"); LOSS (Yeom et al. 2018),
zlib (Carlini et al. 2021), min-k% (Shi et al. 2024), min-k%++ (Zhang et al. 2024),
reference (Carlini et al. 2021), PrivLeak (Shi et al. 2024, MUSE).
"""

from __future__ import annotations

import zlib

import torch

from genforget.metrics.likelihood import mia_auc, min_k_score

__all__ = [
    "loss_score",
    "mia_auc",
    "min_k_pp_score",
    "min_k_score",
    "privleak",
    "reference_score",
    "token_mu_sigma",
    "zlib_score",
]

# Smallest σ_t used in min-k%++: a near one-hot next-token distribution has σ_t ≈ 0.
_SIGMA_EPS = 1e-6


def loss_score(token_logp: torch.Tensor) -> float:
    """LOSS attack: mean target-token NLL, L(y|x)."""
    return -token_logp.float().mean().item()


def zlib_score(token_logp: torch.Tensor, text: str) -> float:
    """zlib attack: L(y|x) / len(zlib.compress(text bytes)).

    Dividing by the compressed length discounts text that is low-loss merely because it is
    repetitive or formulaic, not because it was trained on.
    """
    return loss_score(token_logp) / len(zlib.compress(text.encode("utf-8")))


def token_mu_sigma(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position mean and std of log p under p itself, for logits ``[T, V]``.

    μ_t = Σ_v p_v log p_v, σ_t = sqrt(Σ_v p_v (log p_v)² − μ_t²). In float32: bf16 log-probs
    lose the small differences that σ_t is made of.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    # Masked (-inf) logits have p = 0 and log p = -inf; 0 · inf is NaN, the limit is 0.
    logp = torch.where(p > 0, logp, torch.zeros_like(logp))
    mu = (p * logp).sum(-1)
    var = (p * logp.square()).sum(-1) - mu.square()
    return mu, var.clamp_min(0.0).sqrt()


def min_k_pp_score(token_logp: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, k: float = 0.4) -> float:
    """min-k%++: z_t = (log p(y_t) − μ_t) / σ_t, then the min-k % mean of z, negated.

    ``mu``/``sigma`` come from :func:`token_mu_sigma` at the same positions as ``token_logp``.
    σ_t is floored at 1e-6 so a (near) deterministic position does not divide by zero.
    """
    z = (token_logp.float() - mu.float()) / sigma.float().clamp_min(_SIGMA_EPS)
    return min_k_score(z, k)


def reference_score(token_logp_target: torch.Tensor, token_logp_reference: torch.Tensor) -> float:
    """Reference attack: L_target(y|x) − L_reference(y|x).

    Subtracting a reference model's loss removes how easy the text is in general. Each model
    is averaged over its own tokens, so the two tokenisations need not match.
    """
    return loss_score(token_logp_target) - loss_score(token_logp_reference)


def privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """MUSE PrivLeak: (AUC_unlearned − AUC_retrain) / AUC_retrain × 100, with the min-k% AUC.

    Orientation: MUSE's AUC is 1 − :func:`mia_auc` (MUSE ranks members by a *high* score), and
    only with that AUC does METRICS.md's reading hold (0 ideal, large negative = under-unlearned,
    large positive = over-unlearned). Pass ``1 - mia_auc(...)`` for both models, as
    open-unlearning does, to get numbers comparable with MUSE's.
    """
    if auc_retrain <= 0:
        raise ValueError(f"auc_retrain must be > 0, got {auc_retrain}")
    return (auc_unlearned - auc_retrain) / auc_retrain * 100.0
