"""Membership-inference scores and PrivLeak: the one place to read the project's MIA code.

Every score is loss-like (lower = more member-like), so all of them plug into :func:`mia_auc`.
Definitions: docs/metrics.md ("Membership inference", "PrivLeak"); LOSS (Yeom et al. 2018),
zlib (Carlini et al. 2021), min-k% (Shi et al. 2024), min-k%++ (Zhang et al. 2024),
reference (Carlini et al. 2021), PrivLeak (Shi et al. 2024, MUSE).
"""

from __future__ import annotations

import zlib

import torch

from genforget.evaluation.metrics.likelihood import mia_auc, min_k_score, token_mu_sigma

__all__ = [
    "attack_aucs",
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


def min_k_pp_score(
    token_logp: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    k: float = 0.4,
    sigma_floor: float = _SIGMA_EPS,
) -> float:
    """min-k%++: z_t = (log p(y_t) − μ_t) / σ_t, then the min-k % mean of z, negated.

    ``mu``/``sigma`` come from :func:`token_mu_sigma` at the same positions as ``token_logp``.
    σ_t is floored at ``sigma_floor`` (1e-6) so a (near) deterministic position does not divide by
    zero; open-unlearning floors the variance at 1e-6 instead, i.e. σ at 1e-3.
    """
    z = (token_logp.float() - mu.float()) / sigma.float().clamp_min(sigma_floor)
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


def answer_of(ex: dict) -> str:
    """The scored part alone (answer / target; a plain text is all answer)."""
    return ex.get("answer", ex.get("target", ex.get("text", "")))


def text_of(ex: dict) -> str:
    """The whole scored text of an example (question + answer, prompt + target, or text)."""
    return (
        ex.get("text")
        or f"{ex.get('question', ex.get('prompt', ''))} {ex.get('answer', ex.get('target', ''))}"
    )


def attack_aucs(
    forget: list,
    hold: list,
    f_texts: list[dict],
    h_texts: list[dict],
    k: float,
    scoring,
    tokenizer=None,
    ref: tuple[list, list] | None = None,
) -> dict[str, float]:
    """AUCs of LOSS, zlib, min-k %, min-k %++ (and the reference attack with ``ref``: the
    reference model's stats of the same examples) separating forget ``TokenStats`` from holdout
    ones, with the conventions of the :class:`~genforget.evaluation.metrics.profiles.Scoring` ``scoring``:
    which text zlib compresses, whether an appended EOS counts in the token-wise attacks, and the
    min-k %++ σ floor."""

    def z_text(s, ex: dict) -> str:
        if scoring.zlib_text == "decoded_target":
            return tokenizer.decode(s.target.tolist(), skip_special_tokens=True)
        return answer_of(ex) if scoring.zlib_text == "answer" else text_of(ex)

    def min_k(s) -> float:
        return min_k_score(scoring.tokenwise(s.logp)[0], k)

    def min_k_pp(s) -> float:
        logp, mu, sigma = scoring.tokenwise(s.logp, s.mu, s.sigma)
        return min_k_pp_score(logp, mu, sigma, k, scoring.sigma_floor)

    def auc(score) -> float:
        return mia_auc(
            [score(s, t) for s, t in zip(forget, f_texts, strict=True)],
            [score(s, t) for s, t in zip(hold, h_texts, strict=True)],
        )

    out = {
        "mia_loss_auc": auc(lambda s, t: loss_score(s.logp)),
        "mia_zlib_auc": auc(lambda s, t: zlib_score(s.logp, z_text(s, t))),
        "mia_min_k_auc": auc(lambda s, t: min_k(s)),
        "mia_min_k_pp_auc": auc(lambda s, t: min_k_pp(s)),
    }
    if ref is not None:
        ref_f, ref_h = ref
        out["mia_reference_auc"] = mia_auc(
            [reference_score(s.logp, r.logp) for s, r in zip(forget, ref_f, strict=True)],
            [reference_score(s.logp, r.logp) for s, r in zip(hold, ref_h, strict=True)],
        )
    return out
