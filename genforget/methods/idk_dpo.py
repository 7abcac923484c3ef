"""IdK-DPO (TOFU, Maini et al. 2024, arXiv:2401.06121): Direct Preference Optimization (Rafailov
et al. 2023, arXiv:2305.18290) with a refusal as the preferred answer and the forget answer as
the rejected one, plus the retain NLL.

Reference log-probs of both answers come from the frozen model: cached once (full fine-tuning),
the adapter switched off (LoRA), or a copy (``reference: copy``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genforget.methods.base import Method, PrepareContext
from genforget.methods.npo import NPOConfig
from genforget.methods.refusals import refusal_pairs
from genforget.scores import Scores


class IdkDPO(Method):
    """``loss = -mean(logsigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r)))) + retain_weight * nll_retain``

    with ``c`` the refusal (``forget.chosen``) and ``r`` the forget answer (``forget``); ``beta``
    is ``config.beta`` (TOFU: 0.1). This is the standard DPO loss as in TOFU's code;
    open-unlearning's ``DPO`` multiplies it by ``2 / beta`` (20x at beta = 0.1).
    """

    config_class = NPOConfig  # the same inverse temperature beta

    modalities = ("lm",)
    needs_ref = True
    needs_chosen = True

    def prepare(self, ctx: PrepareContext) -> None:
        answered, refused = refusal_pairs(ctx.examples, seed=self.config.seed)
        # Both sides share the prompt split, so the pair differs only in the answer.
        ctx.forget_feats = ctx.tokenize(answered)
        ctx.chosen_feats = ctx.tokenize(refused)

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        chosen = forget.chosen
        if chosen is None or chosen.ref_logp is None:
            raise ValueError("idk_dpo needs forget.chosen with ref_logp (the refusal's scores)")
        margin = (chosen.logp - chosen.ref_logp) - (forget.logp - forget.ref_logp)
        return -F.logsigmoid(self.config.beta * margin).mean()
