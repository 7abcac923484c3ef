"""Gradient ascent: maximise the forget set's NLL (Jang et al. 2023, "Knowledge Unlearning for
Mitigating Privacy Risks in Language Models"). Unbounded, so it degrades fast: a baseline."""

from __future__ import annotations

import torch

from genforget.methods.base import Method
from genforget.scores import Scores


class GradAscent(Method):
    """``loss = -mean(nll_forget)``; ignores the retain set by definition."""

    uses_retain = False

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return -forget.nll.mean()
