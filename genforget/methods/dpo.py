"""DPO with the preferred answer given by the data (Rafailov et al. 2023, "Direct Preference
Optimization", arXiv:2305.18290), plus the retain NLL.

Each forget example is the rejected answer and carries its preferred one as ``chosen`` (an
example of the same shape: ``{"text", "spans"}``, or a plain string). ``kind: association``
requests build such pairs: the biased decision rejected, the fair rule's decision for the same
record preferred (BiasUnlearn, arXiv:2509.25673, pairs stereotyped with anti-stereotyped
continuations the same way). :class:`~genforget.methods.idk_dpo.IdkDPO` is the special case whose
preferred answers are refusals.
"""

from __future__ import annotations

from genforget.methods.base import PrepareContext
from genforget.methods.idk_dpo import IdkDPO


class DPO(IdkDPO):
    """IdK-DPO's loss (see :class:`~genforget.methods.idk_dpo.IdkDPO`) with ``chosen`` read from
    each forget example instead of a refusal; an example without one is an error."""

    example_fields = ("chosen",)

    def prepare(self, ctx: PrepareContext) -> None:
        missing = [i for i, ex in enumerate(ctx.examples) if not isinstance(ex.get("chosen"), dict | str)]
        if missing:
            raise ValueError(
                f"method 'dpo' needs a preferred answer ('chosen') on every forget example; {len(missing)} "
                f"of {len(ctx.examples)} have none (first: example {missing[0]}). Give each one "
                "{'chosen': {'text': ..., 'spans': ...}}, or use idk_dpo to prefer refusals"
            )
        chosen = [
            ex["chosen"] if isinstance(ex["chosen"], dict) else {"text": ex["chosen"]} for ex in ctx.examples
        ]
        ctx.chosen_feats = ctx.tokenize(chosen)
