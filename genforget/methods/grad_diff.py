"""Gradient difference: ascend on the forget set, descend on the retain set (Liu et al. 2022,
"Continual Learning and Private Unlearning"; the TOFU baseline)."""

from __future__ import annotations

import torch

from genforget.methods.base import Method
from genforget.scores import Scores


class GradDiff(Method):
    """``loss = -mean(nll_forget) + retain_weight * mean(nll_retain)``."""

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return -forget.nll.mean()
