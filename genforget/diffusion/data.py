"""What to forget, as tensors: images and conditions of the forget and retain sets.

``class_task`` builds one for a class-conditional model (erase a class), ``concept_task`` for a
text-conditional one (erase a prompt); :func:`load_digits_images` reads the embedded benchmark's
data, ``sklearn.datasets.load_digits`` (ships with scikit-learn: no download).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DiffusionConfig:
    """Sampling knobs of the diffusion trainer (ESD's own samples) and of the evaluation."""

    num_model_samples: int = field(
        default=64,
        metadata={"help": "ESD: samples of the erased class/concept drawn once from the frozen model"},
    )
    sample_steps: int = field(default=25, metadata={"help": "DDIM steps when sampling"})
    guidance_scale: float = field(
        default=3.0, metadata={"help": "classifier-free guidance scale when sampling"}
    )

    def __post_init__(self) -> None:
        for name in ("num_model_samples", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")


@dataclass
class DiffusionTask:
    """The forget/retain data of one erasure, in the UNet's own conditioning.

    Attributes:
        cond_key: ``"class_labels"`` (class ids) or ``"encoder_hidden_states"`` (prompt embeddings).
        forget_cond: ``[Nf]`` or ``[Nf, L, D]`` condition(s) of the erased class/concept.
        null_cond: ``[1]`` or ``[1, L, D]``: the unconditional input (null class / empty prompt).
        other_conds: conditions SalUn relabels forget examples to (never the erased one).
        sample_shape: ``(C, H, W)`` of an image/latent.
        forget_images: ``[Nf, C, H, W]`` in the model's input range; ``None`` when only ESD (which
            trains on the model's own samples) is to run.
        retain_images, retain_cond: data whose denoising must not degrade (``None``: no retain term).
    """

    cond_key: str
    forget_cond: torch.Tensor
    null_cond: torch.Tensor
    other_conds: torch.Tensor
    sample_shape: tuple[int, int, int]
    forget_images: torch.Tensor | None = None
    retain_images: torch.Tensor | None = None
    retain_cond: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.cond_key not in ("class_labels", "encoder_hidden_states"):
            raise ValueError(
                f"cond_key must be 'class_labels' or 'encoder_hidden_states' (got {self.cond_key!r})"
            )
        if self.forget_images is not None and len(self.forget_images) != len(self.forget_cond):
            raise ValueError(
                f"forget_images ({len(self.forget_images)}) and forget_cond ({len(self.forget_cond)}) differ in length"
            )
        if (self.retain_images is None) != (self.retain_cond is None):
            raise ValueError("give both retain_images and retain_cond, or neither")
        if len(self.other_conds) == 0:
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


def concept_task(
    tokenizer,
    text_encoder,
    concept: str,
    sample_shape: tuple[int, int, int],
    other_prompts: list[str] | None = None,
    forget_images: torch.Tensor | None = None,
    retain_images: torch.Tensor | None = None,
    retain_prompts: list[str] | None = None,
) -> DiffusionTask:
    """Erase the prompt ``concept`` from a text-conditional UNet. ``other_prompts``: what SalUn
    relabels to (default: the empty prompt); images (latents for Stable Diffusion) are optional."""
    from genforget.diffusion.models import encode_prompts

    if not concept.strip():
        raise ValueError("concept is empty: give the prompt to erase, e.g. 'a photo of a church'")
    n = len(forget_images) if forget_images is not None else 1
    emb = encode_prompts(tokenizer, text_encoder, [concept])
    retain_cond = None
    if retain_images is not None:
        if not retain_prompts or len(retain_prompts) != len(retain_images):
            raise ValueError("retain_prompts must give one prompt per retain image")
        retain_cond = encode_prompts(tokenizer, text_encoder, retain_prompts)
    return DiffusionTask(
        cond_key="encoder_hidden_states",
        forget_cond=emb.expand(n, *emb.shape[1:]).clone(),
        null_cond=encode_prompts(tokenizer, text_encoder, [""]),
        other_conds=encode_prompts(tokenizer, text_encoder, other_prompts or [""]),
        sample_shape=sample_shape,
        forget_images=forget_images,
        retain_images=retain_images,
        retain_cond=retain_cond,
    )
