"""Relearn-speed audit: how fast does fine-tuning on the forget set bring it back, next to a retrain?

A model that never saw the forget set (the oracle) learns it from scratch; a model that only hid
it re-learns it faster (Lynch et al. 2024, "Eight Methods to Evaluate Robust Unlearning in LLMs";
Hu et al. 2024, arXiv:2406.13356). So one copy of each model is fine-tuned on the forget set itself
for a ladder of cumulative step budgets (METRICS.md: 0/5/10/20/40), forget extraction is measured
after each, and the unlearned model's curve is compared with the oracle's under the same settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from genforget.evaluation.audits.relearn import Relearner

BUDGETS = (0, 5, 10, 20, 40)


def relearn_curve(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    measure: Callable[[torch.nn.Module], float],
    budgets: Sequence[int] = BUDGETS,
    learning_rate: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
) -> list[float]:
    """``measure`` of a copy of ``model`` after each cumulative number of relearning steps in
    ``budgets`` (ascending, from 0 = the model as it is); ``model`` is untouched."""
    if list(budgets) != sorted(set(budgets)) or budgets[0] < 0:
        raise ValueError(f"budgets must be distinct, ascending and >= 0 (got {list(budgets)})")
    attacker = Relearner(model, tokenizer, examples, learning_rate, batch_size, seed)
    curve = []
    for b in budgets:
        curve.append(float(measure(attacker.train(b - attacker.steps_done))))
    return curve


def curve_gap(curve: Sequence[float], oracle: Sequence[float], budgets: Sequence[int]) -> dict[str, float]:
    """How much faster the model re-learns than the oracle.

    ``area``: the trapezoid area between the two curves (model − oracle) divided by the largest
    budget, i.e. the mean gap in extraction over the ladder (0 = re-learns like a retrain,
    1 = fully extractable throughout while the oracle never is); ``max_gap`` and ``max_gap_at``:
    the largest gap and the budget it occurs at.
    """
    if not (len(curve) == len(oracle) == len(budgets)):
        raise ValueError("curve, oracle curve and budgets must have the same length")
    gaps = [c - o for c, o in zip(curve, oracle, strict=True)]
    span = budgets[-1] - budgets[0]
    if span == 0:
        area = gaps[0]
    else:
        area = (
            sum((gaps[i] + gaps[i + 1]) / 2 * (budgets[i + 1] - budgets[i]) for i in range(len(gaps) - 1))
            / span
        )
    i = max(range(len(gaps)), key=lambda j: gaps[j])
    return {"area": area, "max_gap": gaps[i], "max_gap_at": float(budgets[i])}
