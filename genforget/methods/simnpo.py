"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for
LLM Unlearning", arXiv:2410.07163).

NPO without the reference model: the length-normalised log-likelihood with a margin ``gamma``,
which removes NPO's bias toward forgetting short examples hardest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genforget.common_args import arg
from genforget.methods.base import Method
from genforget.methods.npo import NPOConfig
from genforget.scores import Scores


@dataclass
class SimNPOConfig(NPOConfig):
    """SimNPO's hyperparameters: NPO's ``beta`` and the margin ``gamma``."""

    gamma: float = arg(0.0, "SimNPO margin")


class SimNPO(Method):
    """``loss = -(2/beta) * mean(logsigmoid(-beta * logp/|y| - gamma)) + retain_weight * nll_retain``.

    ``logp/|y|`` is ``-nll`` (the mean target-token log-prob), so no length is needed.
    """

    config_class = SimNPOConfig

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        beta, gamma = self.config.beta, self.config.gamma
        return -(2.0 / beta) * F.logsigmoid(beta * forget.nll - gamma).mean()
