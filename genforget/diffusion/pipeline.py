"""Stable Diffusion pipelines as users bring them (SD 1.x / 2.x and SDXL), as unlearning needs them.

:func:`load_pipeline` takes a pipeline dir or a hub id (from the local cache; genforget never
downloads at run time when ``HF_HUB_OFFLINE`` is set) and returns a :class:`TextToImage`: the
diffusers pipeline itself, plus the prompt encoding, unconditional input, latent shape and VAE
round trip that the trainer, the sampler and the judges use. Prompts are encoded with the
pipeline's own ``encode_prompt``, so a condition here is exactly what the pipeline feeds its
UNet when it generates (SDXL: penultimate hidden states of both encoders, the pooled projection
of the second, and ``add_time_ids``; its unconditional input is zeros when the pipeline's
``force_zeros_for_empty_prompt`` says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genforget.diffusion.cond import Cond, cond_expand, cond_index

# Pipeline classes whose UNet genforget can unlearn, and the kind of conditioning each feeds it.
PIPELINE_KINDS = {"StableDiffusionPipeline": "sd", "StableDiffusionXLPipeline": "sdxl"}


@dataclass
class TextToImage:
    """A loaded text-to-image pipeline. ``source``: the local dir it was read from (a hub id
    resolves to its cache snapshot), whose unchanged files a saved result copies (``None`` for a
    pipeline built in memory); ``name``: what the user gave (the model card's ``base_model``)."""

    pipe: Any
    source: Path | None
    name: str

    @property
    def kind(self) -> str:
        return PIPELINE_KINDS[type(self.pipe).__name__]

    @property
    def unet(self) -> Any:
        return self.pipe.unet

    @property
    def scheduler(self) -> Any:
        return self.pipe.scheduler

    @property
    def vae(self) -> Any:
        return self.pipe.vae

    @property
    def cond_key(self) -> str:
        return "encoder_hidden_states"

    @property
    def image_size(self) -> int:
        """The pipeline's default height/width in pixels (UNet sample size x VAE scale factor)."""
        return int(self.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of a latent."""
        s = int(self.unet.config.sample_size)
        return (int(self.unet.config.in_channels), s, s)

    def _time_ids(self, n: int) -> torch.Tensor:
        # SDXL's micro-conditioning at the pipeline's defaults: original size = target size = the
        # default resolution, no crop (StableDiffusionXLPipeline._get_add_time_ids).
        h = self.image_size
        ids = torch.tensor([[h, h, 0, 0, h, h]], dtype=torch.float32)
        unet_cfg = self.unet.config
        proj = int(self.pipe.text_encoder_2.config.projection_dim)
        want = unet_cfg.projection_class_embeddings_input_dim
        if unet_cfg.addition_time_embed_dim * 6 + proj != want:
            raise ValueError(
                f"SDXL UNet expects added embeddings of size {want}, but 6 time ids x "
                f"{unet_cfg.addition_time_embed_dim} + text_encoder_2 projection {proj} differ; "
                "is this a refiner (aesthetic-score) UNet? only the SDXL base is supported"
            )
        return ids.expand(n, 6).clone()

    @torch.no_grad()
    def _encode_unique(self, prompts: list[str]) -> Cond:
        device = self.pipe.text_encoder_2.device if self.kind == "sdxl" else self.pipe.text_encoder.device
        if self.kind == "sd":
            return self.pipe.encode_prompt(prompts, device, 1, False)[0].float().cpu()
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompts, device=device, do_classifier_free_guidance=False
        )
        return {
            "encoder_hidden_states": embeds.float().cpu(),
            "text_embeds": pooled.float().cpu(),
            "time_ids": self._time_ids(len(prompts)),
        }

    def encode(self, prompts: list[str]) -> Cond:
        """The UNet condition of each prompt (rows in the order given; each distinct prompt is
        encoded once)."""
        if not prompts:
            raise ValueError("no prompts to encode")
        unique = list(dict.fromkeys(prompts))
        enc = self._encode_unique(unique)
        return cond_index(enc, torch.tensor([unique.index(p) for p in prompts]))

    @torch.no_grad()
    def null(self) -> Cond:
        """The unconditional input the pipeline pairs with a prompt for classifier-free guidance
        (one row): the empty prompt's embedding, or zeros for SDXL with
        ``force_zeros_for_empty_prompt``."""
        if self.kind == "sd":
            device = self.pipe.text_encoder.device
            return self.pipe.encode_prompt([""], device, 1, True)[1].float().cpu()
        device = self.pipe.text_encoder_2.device
        _, neg, _, neg_pooled = self.pipe.encode_prompt([""], device=device, do_classifier_free_guidance=True)
        return {
            "encoder_hidden_states": neg.float().cpu(),
            "text_embeds": neg_pooled.float().cpu(),
            "time_ids": self._time_ids(1),
        }

    def null_rows(self, n: int) -> Cond:
        return cond_expand(self.null(), n)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Images ``[N, 3, H, W]`` in [-1, 1] from (scaled) latents, as the pipeline decodes them."""
        return decode_latents(self.vae, latents, batch_size)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Scaled latents (the posterior mean x ``scaling_factor``) of images in [-1, 1]."""
        vae = self.vae
        out = [vae.encode(images[i : i + batch_size].to(vae.device, vae.dtype)).latent_dist.mean
               for i in range(0, len(images), batch_size)]  # fmt: skip
        return torch.cat(out).float().cpu() * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae: Any, latents: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``vae.decode(latents / scaling_factor)`` clamped to [-1, 1], in batches, on the CPU."""
    out = []
    for i in range(0, len(latents), batch_size):
        z = latents[i : i + batch_size].to(vae.device, vae.dtype) / vae.config.scaling_factor
        out.append(vae.decode(z).sample.float().clamp(-1, 1).cpu())
    return torch.cat(out)


def pipeline_class_name(path: str | Path) -> str | None:
    """The ``_class_name`` in a dir's ``model_index.json``, or None when it is not a pipeline dir."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return None
    return json.loads(index.read_text()).get("_class_name")


def resolve_pipeline_dir(name_or_path: str) -> Path:
    """A local pipeline dir for a path or a hub id (the cached snapshot; downloaded only when the
    hub is reachable and ``HF_HUB_OFFLINE`` is not set)."""
    path = Path(name_or_path)
    if path.is_dir():
        if pipeline_class_name(path) is None:
            raise ValueError(
                f"{path} is not a diffusers pipeline dir (no model_index.json); save one with "
                "pipe.save_pretrained(dir)"
            )
        return path
    if path.exists() or name_or_path.startswith((".", "/")) or name_or_path.count("/") > 1:
        raise FileNotFoundError(f"pipeline directory not found: {name_or_path}")
    from diffusers import DiffusionPipeline

    try:
        return Path(DiffusionPipeline.download(name_or_path))
    except Exception as e:  # noqa: BLE001 - diffusers/hub raise many kinds; the message names the cause
        raise OSError(
            f"could not find the pipeline {name_or_path!r}: not a local dir, and not in the hub cache "
            f"({type(e).__name__}: {e})"
        ) from e


def load_pipeline(name_or_path: str | Path, allow_pickle: bool = False) -> TextToImage:
    """Load an SD 1.x/2.x (``StableDiffusionPipeline``) or SDXL (``StableDiffusionXLPipeline``)
    pipeline from a dir or a cached hub id, on the CPU in float32 (the safety checker, if any, is
    not loaded: unlearning never runs it; a saved result keeps its files)."""
    from diffusers import DiffusionPipeline

    from genforget.io import check_safe_weights

    src = resolve_pipeline_dir(str(name_or_path))
    cls = pipeline_class_name(src)
    if cls not in PIPELINE_KINDS:
        raise ValueError(
            f"{name_or_path}: pipeline class {cls} is not supported; genforget unlearns "
            f"{', '.join(PIPELINE_KINDS)} (text-to-image UNet pipelines)"
        )
    check_safe_weights(src, allow_pickle)
    kwargs: dict[str, Any] = {"use_safetensors": None if allow_pickle else True}
    if cls == "StableDiffusionPipeline":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    pipe = DiffusionPipeline.from_pretrained(str(src), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return TextToImage(pipe=pipe, source=src, name=str(name_or_path))
