"""What to forget, as tensors: images and conditions of the forget and retain sets.

``class_task`` builds one for a class-conditional model (erase a class), ``concept_task`` for a
text-conditional one (erase a prompt); :func:`load_digits_images` reads the embedded benchmark's
data, ``sklearn.datasets.load_digits`` (ships with scikit-learn: no download).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from genforget.common_args import arg
from genforget.diffusion.cond import Cond, cond_cat, cond_expand, cond_len

if TYPE_CHECKING:
    from genforget.diffusion.pipeline import TextToImage


@dataclass
class DiffusionConfig:
    """Sampling knobs of the diffusion trainer (the model's own samples) and of the evaluation."""

    num_model_samples: int = arg(
        64,
        "samples of the erased class/concept drawn once from the frozen model: ESD's "
        "data, and every method's forget images when none are given",
    )
    keep_samples: int = arg(
        8, "samples per prompt to keep, drawn once from the frozen model for the anchor term"
    )
    neighbour_prompts: int = arg(
        16,
        "no prompts to keep named: also anchor this many prompts made from the concept by "
        "swapping one word for a random word of the tokenizer's vocabulary (0 = the built-in list only)",
    )
    sample_steps: int = arg(25, "sampler steps (the pipeline's own scheduler)")
    guidance_scale: float = arg(3.0, "classifier-free guidance scale when sampling")

    def __post_init__(self) -> None:
        for name in ("num_model_samples", "keep_samples", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.neighbour_prompts < 0:
            raise ValueError(f"neighbour_prompts must be >= 0 (got {self.neighbour_prompts})")


@dataclass
class DiffusionTask:
    """The forget/retain data of one erasure, in the UNet's own conditioning.

    Attributes:
        cond_key: ``"class_labels"`` (class ids) or ``"encoder_hidden_states"`` (prompt embeddings;
            an SDXL condition is a dict, see :mod:`genforget.diffusion.cond`).
        forget_cond: ``[Nf]`` / ``[Nf, L, D]`` / dict rows: condition(s) of the erased class/concept.
        null_cond: one row: the unconditional input (null class / the pipeline's empty prompt).
        other_conds: conditions SalUn relabels forget examples to (never the erased one).
        sample_shape: ``(C, H, W)`` of an image/latent.
        forget_images: ``[Nf, C, H, W]`` in the model's input space (scaled latents for Stable
            Diffusion); ``None``: the trainer draws ``num_model_samples`` from the frozen model.
        retain_images, retain_cond: data whose denoising must not degrade (``None``: no data term).
        keep_cond: conditions (one row per prompt) whose generations must not change: the trainer
            samples the frozen model on them once and, each step, holds the model's prediction on
            those samples to the frozen one (the anchor term; ``None``: none).
    """

    cond_key: str
    forget_cond: Cond
    null_cond: Cond
    other_conds: Cond
    sample_shape: tuple[int, int, int]
    forget_images: torch.Tensor | None = None
    retain_images: torch.Tensor | None = None
    retain_cond: Cond | None = None
    keep_cond: Cond | None = None

    def __post_init__(self) -> None:
        if self.cond_key not in ("class_labels", "encoder_hidden_states"):
            raise ValueError(
                f"cond_key must be 'class_labels' or 'encoder_hidden_states' (got {self.cond_key!r})"
            )
        if self.forget_images is not None and len(self.forget_images) != cond_len(self.forget_cond):
            raise ValueError(
                f"forget_images ({len(self.forget_images)}) and forget_cond ({cond_len(self.forget_cond)}) "
                "differ in length"
            )
        if (self.retain_images is None) != (self.retain_cond is None):
            raise ValueError("give both retain_images and retain_cond, or neither")
        if cond_len(self.other_conds) == 0:
            raise ValueError("other_conds is empty: SalUn needs at least one class/prompt to relabel to")


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits`` as ``[N, 1, 8, 8]`` in [-1, 1]
    (pixel values 0..16 scaled) and their labels ``[N]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    return x, torch.tensor(d.target, dtype=torch.long)


def class_task(
    images: torch.Tensor, labels: torch.Tensor, erase: int, num_classes: int, with_retain: bool = True
) -> DiffusionTask:
    """Erase class ``erase`` of a class-conditional model trained on ``(images, labels)``;
    the retain set is every other class; class id ``num_classes`` is the null class."""
    if not 0 <= erase < num_classes:
        raise ValueError(f"erase_class must be in 0..{num_classes - 1} (got {erase})")
    f = labels == erase
    if not f.any():
        raise ValueError(f"no image of class {erase} in the data: nothing to forget")
    others = torch.tensor([c for c in range(num_classes) if c != erase])
    return DiffusionTask(
        cond_key="class_labels",
        forget_cond=labels[f],
        null_cond=torch.tensor([num_classes]),
        other_conds=others,
        sample_shape=tuple(images.shape[1:]),
        forget_images=images[f],
        retain_images=images[~f] if with_retain else None,
        retain_cond=labels[~f] if with_retain else None,
    )


# Prompts kept by the anchor term when the user names none: generic captions of common subjects
# (a real pipeline draws each of them well). The unconditional input is always kept too: guidance
# pairs every prompt with it, so letting it drift changes every generation.
BUILTIN_KEEP_PROMPTS = (
    "a photo of a person",
    "a photo of a dog",
    "a photo of a cat",
    "a photo of a house",
    "a photo of a car",
    "a photo of a tree",
    "a photo of food on a plate",
    "a landscape with mountains",
    "a city street",
    "a painting",
)


def _text_task(
    encode: Callable[[list[str]], Cond],
    null: Cond,
    concept: str,
    sample_shape: tuple[int, int, int],
    other_prompts: list[str] | None,
    forget_images: torch.Tensor | None,
    retain_images: torch.Tensor | None,
    retain_prompts: list[str] | None,
    keep_prompts: list[str] | None,
) -> DiffusionTask:
    if not concept.strip():
        raise ValueError("concept is empty: give the prompt to erase, e.g. 'a photo of a church'")
    for name, prompts in (("keep_prompts", keep_prompts), ("other_prompts", other_prompts)):
        if prompts and concept.strip() in [p.strip() for p in prompts]:
            raise ValueError(f"{name} holds the concept to erase; remove it from {name}")
    n = len(forget_images) if forget_images is not None else 1
    retain_cond = None
    if retain_images is not None:
        if not retain_prompts or len(retain_prompts) != len(retain_images):
            raise ValueError("retain_prompts must give one prompt per retain image")
        retain_cond = encode(retain_prompts)
    keep_cond = None
    if keep_prompts is not None:
        keep_cond = cond_cat([encode(list(keep_prompts)), null]) if keep_prompts else null
    return DiffusionTask(
        cond_key="encoder_hidden_states",
        forget_cond=cond_expand(encode([concept]), n),
        null_cond=null,
        other_conds=encode(list(other_prompts)) if other_prompts else null,
        sample_shape=sample_shape,
        forget_images=forget_images,
        retain_images=retain_images,
        retain_cond=retain_cond,
        keep_cond=keep_cond,
    )


def concept_task(
    tokenizer,
    text_encoder,
    concept: str,
    sample_shape: tuple[int, int, int],
    other_prompts: list[str] | None = None,
    forget_images: torch.Tensor | None = None,
    retain_images: torch.Tensor | None = None,
    retain_prompts: list[str] | None = None,
    keep_prompts: list[str] | None = None,
) -> DiffusionTask:
    """Erase the prompt ``concept`` from a text-conditional UNet given its tokenizer and CLIP text
    encoder (last hidden states). ``other_prompts``: what SalUn relabels to (default: the empty
    prompt); ``keep_prompts``: prompts whose generations the anchor term holds (plus the empty
    prompt; ``None``: no anchor term). A pipeline dir: :func:`pipeline_task`."""
    from genforget.diffusion.models import encode_prompts

    def encode(prompts: list[str]) -> torch.Tensor:
        return encode_prompts(tokenizer, text_encoder, prompts)

    return _text_task(encode, encode([""]), concept, sample_shape, other_prompts, forget_images,
                      retain_images, retain_prompts, keep_prompts)  # fmt: skip


def pipeline_task(
    model: TextToImage,
    concept: str,
    keep_prompts: list[str] | None = None,
    other_prompts: list[str] | None = None,
    forget_images: torch.Tensor | None = None,
    retain_images: torch.Tensor | None = None,
    retain_prompts: list[str] | None = None,
) -> DiffusionTask:
    """Erase ``concept`` from a loaded SD / SDXL pipeline (:func:`genforget.diffusion.pipeline.load_pipeline`),
    prompts encoded as the pipeline encodes them. ``keep_prompts``: the prompts to keep (the anchor
    term; ``None``: :data:`BUILTIN_KEEP_PROMPTS` — :func:`default_keep_prompts` adds the concept's
    neighbours; ``[]``: only the unconditional input);
    ``other_prompts``: SalUn's relabelling targets (default: the keep prompts);
    ``forget_images``: scaled latents of images of the concept (default: the model's own samples);
    ``retain_images`` / ``retain_prompts``: scaled latents and captions of data whose denoising
    loss must not rise (a retain term beside the anchor term)."""
    keep = list(BUILTIN_KEEP_PROMPTS) if keep_prompts is None else list(keep_prompts)
    others = list(other_prompts) if other_prompts else keep
    return _text_task(model.encode, model.null(), concept, model.sample_shape, others, forget_images,
                      retain_images, retain_prompts, keep)  # fmt: skip


def default_keep_prompts(
    model: TextToImage, concept: str, neighbours: int, seed: int = 0
) -> tuple[list[str], int]:
    """The prompts to keep when the user names none: :data:`BUILTIN_KEEP_PROMPTS` plus up to
    ``neighbours`` neighbour prompts of the concept (:mod:`genforget.diffusion.anchors`). Returns
    ``(prompts, number of neighbours)``."""
    from genforget.diffusion.anchors import neighbour_prompts

    tokenizer = getattr(model.pipe, "tokenizer", None) or model.pipe.tokenizer_2
    near = neighbour_prompts(concept, tokenizer, neighbours, seed)
    return [*BUILTIN_KEEP_PROMPTS, *near], len(near)
