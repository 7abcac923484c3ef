"""Audits of the robustness of forgetting (METRICS.md, "Robustness of forgetting (audits)").

Each audit attacks a copy of the unlearned model, then the forgetting metrics are measured again:
forgetting that comes back was hidden, not removed. :func:`recovered_share` puts the comeback on
one scale: 0 = still forgotten, 1 = back to the victim's level.
"""

from __future__ import annotations

from typing import Any

from genforget.evaluation.audits.quantize import quantize_copy
from genforget.evaluation.audits.relearn import relearn_copy, split_for_relearning

AUDITS: dict[str, str] = {
    "relearn": "fine-tune a few steps on one slice of the forget set; measure the held-out slice",
    "quant8": "quantise the weights to bitsandbytes 8-bit (LLM.int8()) and re-measure",
    "quant4": "quantise the weights to bitsandbytes 4-bit NF4 and re-measure",
    "paraphrase": "probe the forgotten facts with a phrasing the model never saw them in",
    "relearn_speed": "fine-tune on the forget set for a ladder of step budgets; compare with the oracle",
}


def recovered_share(after: float, unlearned: float, victim: float | None) -> float | None:
    """Share of the forgetting undone by an attack: ``(after - unlearned) / (victim - unlearned)``.

    ``None`` when there is no victim value or nothing was forgotten (victim - unlearned <= 1e-9),
    since the ratio is then meaningless. Not clipped: below 0 means the attack made the model
    forget more, above 1 that it now knows more than the victim did.
    """
    if victim is None or victim - unlearned <= 1e-9:
        return None
    return (after - unlearned) / (victim - unlearned)


def paraphrase_probes(corpus: Any, split: str) -> list[dict]:
    """PII probes of ``split`` in each person's *other* sentence template: the model saw each fact
    only in the other phrasing, so these test whether the fact, not the string, is gone."""
    return corpus.pii_probes(split, paraphrase=True)


__all__ = [
    "AUDITS",
    "paraphrase_probes",
    "quantize_copy",
    "recovered_share",
    "relearn_copy",
    "split_for_relearning",
]
