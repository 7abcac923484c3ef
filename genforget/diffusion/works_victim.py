"""The memorising text-to-image victim of the image-copyright takedown, and its retrain oracle.

A tiny Stable Diffusion pipeline (:mod:`genforget.diffusion.tiny`, its tokenizer given one token
per caption word) trained on :func:`genforget.diffusion.works.works_dataset`: background shapes
plus a few real works, each duplicated, until the works come back from their captions. The
oracle is the same recipe (same init, VAE, steps, seed) on the data without the taken-down
works: what a model that never saw them draws. Both are cached with
:func:`genforget.diffusion.t2i_victim.cached_pipeline`, keyed by everything that made them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genforget.diffusion.pipeline import TextToImage
from genforget.diffusion.shapes import CONCEPTS_A
from genforget.diffusion.t2i_train import train_text_to_image, train_vae
from genforget.diffusion.t2i_victim import TinyT2IConfig, cached_pipeline
from genforget.diffusion.works import WORKS, WorksData, works_dataset


@dataclass
class WorksVictimConfig(TinyT2IConfig):
    """What the works victim is trained on and how (the cache key)."""

    works: list[str] = field(default_factory=lambda: list(WORKS), metadata={"help": "built-in works"})
    copies: int = field(default=32, metadata={"help": "training copies of each work (duplication)"})
    concepts: list[str] = field(
        default_factory=lambda: list(CONCEPTS_A), metadata={"help": "background captions"}
    )
    images_per_concept: int = field(default=64, metadata={"help": "rendered images per background caption"})
    # 1,000 UNet steps of 64 at lr 2e-3 (TinyT2IConfig's) with a 400-step VAE: a quarter of that
    # (500 x 32 at 3e-3, 32 background images, DPM-Solver sampling) left the worst work regenerated
    # only 0.625 of the time and the background quality at 0.50, too weak a victim for the demo.
    vae_steps: int = field(default=400, kw_only=True, metadata={"help": "steps of tiny-VAE training"})

    def __post_init__(self) -> None:
        unknown = [w for w in self.works if w not in WORKS]
        if unknown:
            raise ValueError(f"works: unknown {unknown}; the built-in works are {sorted(WORKS)}")

    def data(self) -> WorksData:
        return works_dataset(self.works, self.copies, self.concepts, self.images_per_concept,
                             self.image_size, self.seed)  # fmt: skip


def build_works_pipeline(seed: int, image_size: int, vae=None):  # noqa: ANN001, ANN201 - diffusers objects
    """A tiny ``StableDiffusionPipeline`` whose tokenizer knows the works' words as whole tokens."""
    from diffusers import StableDiffusionPipeline

    from genforget.diffusion.tiny import (
        TINY_WORDS,
        tiny_clip_text_encoder,
        tiny_clip_tokenizer,
        tiny_scheduler,
        tiny_unet,
        tiny_vae,
    )
    from genforget.diffusion.works import WORK_WORDS

    tokenizer = tiny_clip_tokenizer(words=tuple(dict.fromkeys(TINY_WORDS + WORK_WORDS)))
    return StableDiffusionPipeline(
        vae=vae if vae is not None else tiny_vae(image_size, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed),
        tokenizer=tokenizer,
        unet=tiny_unet(image_size // 4, 32, seed),
        scheduler=tiny_scheduler("epsilon"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _key(cfg: WorksVictimConfig) -> dict:
    return {"config": dataclasses.asdict(cfg), "data": "genforget.diffusion.works"}


def works_victim(
    cfg: WorksVictimConfig, out: Path, log: Callable[[str], None] = print
) -> tuple[TextToImage, dict]:
    """The victim trained on every work and background caption (a tiny VAE first, then the
    UNet), cached in ``out``; ``info``: seconds, parameter counts, whether it was cached."""

    def make() -> tuple[TextToImage, dict]:
        data = cfg.data()
        log(f"victim: tiny VAE ({cfg.vae_steps} steps) + UNet ({cfg.train_steps} steps) on {len(data.captions)} "
            f"images: {len(cfg.works)} works x {cfg.copies} copies + {len(cfg.concepts)} background captions")  # fmt: skip
        pipe = build_works_pipeline(cfg.seed, cfg.image_size)
        vae_s = train_vae(pipe.vae, data.images, steps=cfg.vae_steps, seed=cfg.seed)
        model = TextToImage(pipe, None, "tiny-works-victim")
        r = train_text_to_image(model, data.captions, cfg.train_config(), images=data.images)
        return model, {"vae_s": vae_s, "unet_s": r["seconds"], "final_loss": r["loss"], **_sizes(pipe)}

    return cached_pipeline(out, _key(cfg), make)


def works_oracle(
    cfg: WorksVictimConfig,
    victim: TextToImage,
    forget: list[str],
    out: Path,
    log: Callable[[str], None] = print,
) -> tuple[TextToImage, dict]:
    """The retrain oracle: the victim's recipe without every copy of the works ``forget`` (the
    victim's VAE, as SD fine-tunes share theirs), cached in ``out``."""
    from genforget.cards import sha256_text

    def make() -> tuple[TextToImage, dict]:
        data = cfg.data().without(forget)
        log(f"oracle: the same training without {len(forget)} work(s) ({len(data.captions)} images)")
        pipe = build_works_pipeline(cfg.seed, cfg.image_size, vae=victim.vae)
        model = TextToImage(pipe, None, "tiny-works-oracle")
        r = train_text_to_image(model, data.captions, cfg.train_config(), images=data.images)
        return model, {"unet_s": r["seconds"], "final_loss": r["loss"]}

    key = {**_key(cfg), "without_sha256": sorted(sha256_text(WORKS[w].caption) for w in forget)}
    return cached_pipeline(out, key, make)


def _sizes(pipe) -> dict[str, int]:  # noqa: ANN001 - a diffusers pipeline
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "unet_params": count(pipe.unet),
        "vae_params": count(pipe.vae),
        "text_encoder_params": count(pipe.text_encoder),
    }
