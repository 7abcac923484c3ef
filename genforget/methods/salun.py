"""SalUn, saliency unlearning (Fan et al. 2024, "SalUn: Empowering Machine Unlearning via Gradient-
based Weight Saliency in Both Image Classification and Generation", arXiv:2310.12508).

Two parts. (1) Random labelling: the prediction for a forget example under its own class/prompt
``c`` is regressed onto the frozen model's prediction for a random *other* class/prompt ``c'``
(the paper's generation objective, its Eq. 7 with the target from the frozen model), plus the
retain denoising loss. (2) Weight saliency: only the weights whose forget-loss gradient is among
the largest ``saliency_ratio`` share may change; the trainer masks the other gradients.

For text-to-image concepts the forget examples can be the model's own samples of the concept
(the trainer draws them when no images are given), the random other prompts are the prompts to
keep, and the retain term is the anchor term on those prompts' samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.methods.base import Method
from genforget.scores import Scores


@dataclass
class SalUnConfig(UnlearnConfig):
    """SalUn's hyperparameter."""

    saliency_ratio: float = arg(
        0.5, "SalUn: share of weights (largest forget-loss gradients) that may change (diffusion)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.saliency_ratio <= 1:
            raise ValueError(f"saliency_ratio must be in (0, 1] (got {self.saliency_ratio})")


class SalUn(Method):
    """``loss = mean(MSE(eps_theta(x_t, c), eps*(x_t, c'))) + retain_weight * mean(MSE_retain)``,
    with gradients masked to the salient weights (full fine-tuning; a LoRA adapter is already a
    restricted update, so the mask is not applied there)."""

    config_class = SalUnConfig

    modalities = ("diffusion",)
    diffusion_target = "relabel"
    saliency = True

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return forget.nll.mean()
