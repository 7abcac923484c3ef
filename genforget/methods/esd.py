"""Erased Stable Diffusion, ESD (Gandikota et al. 2023, "Erasing Concepts from Diffusion Models",
arXiv:2303.07345).

Fine-tune the conditional noise prediction for the erased concept ``c`` toward the frozen model's
*negatively guided* prediction ``eps*(x_t) - eta * (eps*(x_t, c) - eps*(x_t))``, on ``x_t`` made
from the frozen model's own samples of ``c``: generating ``c`` then steers away from ``c``.
The target is built by :func:`genforget.diffusion.scoring.esd_target`; here the forget ``Scores``
already hold ``nll = MSE(eps_theta(x_t, c), target)``, so the loss is plain regression.

The paper has no retain term; here the shared one is added (``retain_weight`` x the retain NLL:
the anchor term on prompts to keep, or the denoising loss on retain images), because on its own
ESD drags concepts that share the erased one's words or look along with it. ``retain_weight: 0``
is the paper's ESD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.methods.base import Method
from genforget.scores import Scores


@dataclass
class ESDConfig(UnlearnConfig):
    """ESD's hyperparameter."""

    esd_eta: float = arg(
        1.0, "ESD negative-guidance scale: target = uncond - eta * (cond - uncond) (diffusion)"
    )


class ESD(Method):
    """``loss = mean(MSE(eps_theta(x_t, c), eps*(x_t) - eta * (eps*(x_t, c) - eps*(x_t))))
    + retain_weight * mean(retain NLL)``."""

    config_class = ESDConfig

    modalities = ("diffusion",)
    diffusion_target = "esd"

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return forget.nll.mean()
