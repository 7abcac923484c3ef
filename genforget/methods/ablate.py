"""Concept ablation (Kumari et al. 2023, "Ablating Concepts in Text-to-Image Diffusion Models",
arXiv:2303.13516), the model-based variant.

Where ESD steers the caption *away* from what it drew, concept ablation maps it *onto* an anchor:
the prediction for the ablated caption ``c`` is regressed onto the frozen model's prediction for
an anchor caption ``c*``, on noisy images the frozen model drew for ``c*``:
``loss = MSE(eps_theta(x_t, c), eps*(x_t, c*))``, ``x_0 ~ model(c*)``. For a memorised work the
anchor is a caption the model has *not* memorised (a broad caption learnt from many images), so
the work's caption comes to draw ordinary, non-copied images, as the paper ablates a memorised
image by anchoring its caption to a generic one (its Sec. 4, "memorized images"). The shared
retain term (the anchor term on the prompts to keep) holds the rest.

The anchor is ``anchor_prompt`` (else the first of ``other_prompts`` / the prompts to keep).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from genforget.config import UnlearnConfig
from genforget.methods.base import Method
from genforget.scores import Scores


@dataclass
class AblateConfig(UnlearnConfig):
    """Concept ablation's anchor."""

    anchor_prompt: str = field(
        default="",
        metadata={
            "help": "concept ablation: the caption the forgotten one is mapped onto (a non-memorised, "
            "broader caption; empty: the first prompt to keep) (diffusion)"
        },
    )


class Ablate(Method):
    """``loss = mean(MSE(eps_theta(x_t, c), eps*(x_t, c*))) + retain_weight * mean(retain NLL)``,
    ``x_0`` the frozen model's samples for the anchor ``c*``."""

    config_class = AblateConfig

    modalities = ("diffusion",)
    diffusion_target = "anchor"

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return forget.nll.mean()
