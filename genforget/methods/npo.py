"""Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization: From
Catastrophic Collapse to Effective Unlearning", arXiv:2404.05868).

DPO with only a rejected answer: the loss is bounded, so unlike gradient ascent it stops pushing
once the model is ``beta``-far below the reference on the forget example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.methods.base import Method
from genforget.scores import Scores


@dataclass
class NPOConfig(UnlearnConfig):
    """NPO's hyperparameter (also read by IdK-DPO and DPO: the same inverse temperature)."""

    beta: float = arg(0.1, "NPO/SimNPO/IdK-DPO inverse temperature")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0 (got {self.beta})")


class NPO(Method):
    """``loss = -(2/beta) * mean(logsigmoid(-beta * (logp - ref_logp))) + retain_weight * nll_retain``."""

    config_class = NPOConfig

    needs_ref = True

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        beta = self.config.beta
        log_ratio = forget.logp - forget.ref_logp
        return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
