"""Base class of unlearning methods and the retain term they share."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from genforget.scores import Scores

if TYPE_CHECKING:
    from genforget.config import UnlearnConfig


class Method:
    """An unlearning objective over per-example :class:`Scores`.

    Subclasses set ``needs_ref`` when their loss reads ``forget.ref_logp``, ``modalities`` when
    they only make sense for one model family, and implement :meth:`forget_loss`.

    Diffusion-only knobs (read by :mod:`genforget.diffusion.trainer`, never by the loss):
    ``diffusion_target`` names what the forget ``Scores`` measure the prediction against —
    ``"noise"`` (the sampled noise: the usual denoising MSE), ``"esd"`` (the frozen model's
    negatively guided prediction) or ``"relabel"`` (the frozen model's prediction for a random
    other class/prompt) — and ``saliency`` asks for a SalUn weight-saliency gradient mask.
    """

    name: ClassVar[str] = ""
    needs_ref: ClassVar[bool] = False
    uses_retain: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("lm", "diffusion")
    diffusion_target: ClassVar[str] = "noise"
    saliency: ClassVar[bool] = False

    def __init__(self, config: UnlearnConfig) -> None:
        self.config = config

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, forget: Scores, retain: Scores | None = None) -> torch.Tensor:
        """Scalar loss: the method's forget term plus ``retain_weight`` × retain NLL."""
        if self.needs_ref and forget.ref_logp is None:
            raise ValueError(f"method {self.name!r} needs reference log-probs (forget.ref_logp)")
        loss = self.forget_loss(forget)
        if self.uses_retain and retain is not None and self.config.retain_weight > 0:
            loss = loss + self.config.retain_weight * retain.nll.mean()
        return loss
