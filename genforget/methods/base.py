"""Base class of unlearning methods and the retain term they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from genforget.scores import Scores

if TYPE_CHECKING:
    from genforget.config import UnlearnConfig


@dataclass
class PrepareContext:
    """What :meth:`Method.prepare` sees, once, before the first optimizer step (LM path).

    A method may replace ``forget_feats`` (new targets: refusals, WHP's generic labels) and set
    ``chosen_feats`` (the preferred answer of each forget example, index-aligned, for DPO-style
    pairs). ``tokenize`` turns examples into features the way the trainer does; ``frozen_hidden``
    returns ``[N_target_tokens, D]`` activations of features at a decoder layer under the model as
    it is now (no grad). ``model`` is the victim before any LoRA wrapping, already on its device.
    """

    model: torch.nn.Module
    tokenizer: Any
    config: UnlearnConfig
    examples: list[dict]
    forget_feats: list[dict]
    retain_feats: list[dict]
    tokenize: Callable[[list[dict]], list[dict]]
    frozen_hidden: Callable[[list[dict], int], torch.Tensor]
    chosen_feats: list[dict] | None = None
    info: dict = field(default_factory=dict)


class Method:
    """An unlearning objective over per-example :class:`Scores`.

    Subclasses set ``needs_ref`` when their loss reads ``forget.ref_logp``, ``modalities`` when
    they only make sense for one model family, and implement :meth:`forget_loss`.

    Hooks for methods that need more than log-probs (read by :mod:`genforget.lm.method_hooks`):
    ``needs_hidden`` asks for ``Scores.hidden`` (activations at decoder layer :meth:`hidden_layer`,
    at the positions predicting forget and retain target tokens) and ``retain.ref_hidden`` (the
    same under the frozen model); ``needs_chosen``
    asks for ``forget.chosen`` (scores of the preferred answer set by :meth:`prepare`);
    ``example_fields`` names the keys every forget example must carry besides its text (a
    method that reads its preferred answers from the data lists ``"chosen"``), so code that runs
    "every method" on plain texts can skip it and say so;
    :meth:`trainable_modules` restricts what trains (full fine-tuning: only those modules'
    parameters; LoRA: only those modules get an adapter); :meth:`prepare` runs once before
    training and may rewrite the forget features (see :class:`PrepareContext`).

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
    needs_hidden: ClassVar[bool] = False
    needs_chosen: ClassVar[bool] = False
    example_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: UnlearnConfig) -> None:
        self.config = config

    def prepare(self, ctx: PrepareContext) -> None:
        """Once before training: may set ``ctx.forget_feats`` / ``ctx.chosen_feats``. No-op here."""

    def hidden_layer(self, n_layers: int) -> int:
        """Index of the decoder layer whose output ``Scores.hidden`` holds (``needs_hidden``)."""
        raise NotImplementedError(f"method {self.name!r} needs_hidden but names no layer")

    def trainable_modules(self, model: torch.nn.Module) -> list[str] | None:
        """Full names of the modules that may change, or ``None`` for all (the default)."""
        return None

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
