"""WGA, weighted gradient ascent (Wang et al. 2025, "Rethinking LLM Unlearning Objectives: A
Gradient Perspective and Go Beyond", ICLR 2025, arXiv:2502.19301).

Gradient ascent with each forget token's NLL weighted by its own (detached) probability to the
power ``wga_beta``: tokens the model already finds unlikely stop contributing, so ascent does not
keep pushing what is already forgotten, which is what makes plain gradient ascent collapse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.methods.base import Method
from genforget.scores import Scores


@dataclass
class WGAConfig(UnlearnConfig):
    """WGA's hyperparameter."""

    wga_beta: float = arg(1.0, "WGA: forget-token NLL weighted by p(token)^wga_beta (detached)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wga_beta < 0:
            raise ValueError(f"wga_beta must be >= 0 (got {self.wga_beta})")


class WGA(Method):
    """``loss = -sum_t(sg[p_t^beta] * nll_t) / n_tokens + retain_weight * mean(nll_retain)``,

    over every target token of the batch (as open-unlearning's ``compute_wga_loss``); ``sg`` is
    stop-gradient, ``beta`` = ``config.wga_beta``.
    """

    config_class = WGAConfig

    modalities = ("lm",)  # needs token-level log-probs

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        if forget.token_logp is None or forget.token_mask is None:
            raise ValueError("wga needs forget.token_logp and token_mask (per-token log-probs)")
        mask = forget.token_mask.to(forget.token_logp.dtype)
        weight = (self.config.wga_beta * forget.token_logp.detach()).exp()  # p^beta = exp(beta * log p)
        return (weight * forget.token_logp * mask).sum() / mask.sum().clamp(min=1)
