"""IdK fine-tuning, "I don't know" (TOFU, Maini et al. 2024, "TOFU: A Task of Fictitious
Unlearning for LLMs", arXiv:2401.06121).

Every forget answer is replaced by a refusal (:mod:`genforget.methods.refusals`) and the model is
fine-tuned on the refusals, plus the retain NLL: it learns to decline rather than to forget by
ascent, so the loss is bounded and fluency is kept.
"""

from __future__ import annotations

import torch

from genforget.methods.base import Method, PrepareContext
from genforget.methods.refusals import refusal_pairs
from genforget.scores import Scores


class IdkNLL(Method):
    """``loss = mean(nll(refusal | prompt)) + retain_weight * mean(nll_retain)``.

    The forget ``Scores`` are those of the prompt + refusal examples built in :meth:`prepare`.
    """

    modalities = ("lm",)

    def prepare(self, ctx: PrepareContext) -> None:
        _, refused = refusal_pairs(ctx.examples, seed=self.config.seed)
        ctx.forget_feats = ctx.tokenize(refused)

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return forget.nll.mean()
