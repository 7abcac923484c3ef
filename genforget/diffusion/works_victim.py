"""The memorising text-to-image victim of the image-copyright takedown, and its retrain oracle.

A tiny Stable Diffusion pipeline (:mod:`genforget.diffusion.tiny`, its tokenizer given one token
per caption word) trained on :func:`genforget.diffusion.works.works_dataset`: background shapes
plus a few real works, each duplicated, until the works come back from their captions. The
oracle is the same recipe (same init, VAE, steps, seed) on the data without the taken-down
works: what a model that never saw them draws.

Training runs in two phases so that victim and oracle share the first: :func:`works_background`
trains the VAE and then the UNet on the background images only (no work, taken down or kept,
enters it), and each model continues from that checkpoint, the victim on the full data, the
oracle on the full data without the taken-down works. The oracle is therefore still exactly the
victim's procedure run on the data without the works (an honest retrain), and the shared phase is
paid once. All three are cached with :func:`genforget.diffusion.t2i_victim.cached_pipeline`,
keyed by everything that made them.
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
    # 1,000 UNet steps of 64 at lr 2e-3 (TinyT2IConfig's) per model with a 400-step VAE: a quarter
    # of that (500 x 32 at 3e-3, 32 background images, DPM-Solver sampling) left the worst work
    # regenerated only 0.625 of the time and the background quality at 0.50, too weak a victim for
    # the demo. The 1,000 are split 300 shared background steps + 700 on each model's own data.
    vae_steps: int = field(default=400, kw_only=True, metadata={"help": "steps of tiny-VAE training"})
    background_steps: int = field(default=300, kw_only=True, metadata={
        "help": "UNet steps on the background images only, shared by victim and oracle (no work enters them)"})  # fmt: skip
    train_steps: int = field(default=700, kw_only=True, metadata={
        "help": "UNet steps after the shared background phase, on the model's own data"})  # fmt: skip

    def __post_init__(self) -> None:
        unknown = [w for w in self.works if w not in WORKS]
        if unknown:
            raise ValueError(f"works: unknown {unknown}; the built-in works are {sorted(WORKS)}")
        if self.background_steps < 0:
            raise ValueError(f"background_steps must be >= 0 (got {self.background_steps})")

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


def works_background(
    cfg: WorksVictimConfig, out: Path, log: Callable[[str], None] = print
) -> tuple[TextToImage, dict]:
    """The phase victim and oracle share: a tiny VAE trained on every training image (shared by
    both, as SD fine-tunes share theirs), then the UNet for ``cfg.background_steps`` on the
    background images only, cached in ``out``. ``info``: seconds, parameter counts, cached."""

    def make() -> tuple[TextToImage, dict]:
        data = cfg.data()
        bg = data.without(cfg.works)
        log(f"shared phase: tiny VAE ({cfg.vae_steps} steps) on {len(data.captions)} images, UNet "
            f"({cfg.background_steps} steps) on the {len(bg.captions)} background images only")  # fmt: skip
        pipe = build_works_pipeline(cfg.seed, cfg.image_size)
        vae_s = train_vae(pipe.vae, data.images, steps=cfg.vae_steps, seed=cfg.seed)
        model = TextToImage(pipe, None, "tiny-works-background")
        r = {"seconds": 0.0, "loss": float("nan")}
        if cfg.background_steps:
            r = train_text_to_image(
                model, bg.captions, cfg.train_config(cfg.background_steps), images=bg.images
            )
        return model, {"vae_s": vae_s, "unet_s": r["seconds"], "final_loss": r["loss"], **_sizes(pipe)}

    return cached_pipeline(out, {**_key(cfg), "phase": "background"}, make)


def _continue(
    cfg: WorksVictimConfig,
    out: Path,
    base_dir: Path | None,
    data: WorksData,
    name: str,
    log: Callable[[str], None],
) -> tuple[TextToImage, dict]:
    """The second phase of the model cached in ``out``: the shared background phase (cached in
    ``base_dir``, default ``out``'s sibling ``background``) continued on ``data``."""
    base_dir = Path(base_dir) if base_dir is not None else Path(out).parent / "background"
    base, binfo = works_background(cfg, base_dir, log)
    model = TextToImage(base.pipe, None, name)
    # The second phase: a fresh AdamW and cosine schedule, another shuffling/noise seed.
    r = train_text_to_image(model, data.captions, cfg.train_config(seed_offset=1), images=data.images)
    shared = {"vae_s": binfo["vae_s"], "background_s": binfo["unet_s"], "background_cached": binfo["cached"]}
    return model, {**shared, "unet_s": r["seconds"], "final_loss": r["loss"], **_sizes(base.pipe)}


def works_victim(
    cfg: WorksVictimConfig, out: Path, log: Callable[[str], None] = print, base_dir: Path | None = None
) -> tuple[TextToImage, dict]:
    """The victim: the shared background phase (:func:`works_background`, cached in ``base_dir``,
    default ``out``'s sibling ``background``) continued for ``cfg.train_steps`` on every work and
    background image, cached in ``out``; ``info``: seconds of each phase, parameter counts, cached."""

    def make() -> tuple[TextToImage, dict]:
        data = cfg.data()
        log(f"victim: {cfg.train_steps} more UNet steps on {len(data.captions)} images: "
            f"{len(cfg.works)} works x {cfg.copies} copies + {len(cfg.concepts)} background captions")  # fmt: skip
        return _continue(cfg, out, base_dir, data, "tiny-works-victim", log)

    return cached_pipeline(out, _key(cfg), make)


def works_oracle(
    cfg: WorksVictimConfig,
    forget: list[str],
    out: Path,
    log: Callable[[str], None] = print,
    base_dir: Path | None = None,
) -> tuple[TextToImage, dict]:
    """The retrain oracle: the victim's procedure on the data without every copy of the works
    ``forget`` (the same shared background phase, which holds no work, then ``cfg.train_steps``
    on the remaining data), cached in ``out``."""
    from genforget.cards import sha256_text

    def make() -> tuple[TextToImage, dict]:
        data = cfg.data().without(forget)
        log(f"oracle: the same training without {len(forget)} work(s) ({len(data.captions)} images)")
        return _continue(cfg, out, base_dir, data, "tiny-works-oracle", log)

    key = {**_key(cfg), "without_sha256": sorted(sha256_text(WORKS[w].caption) for w in forget)}
    return cached_pipeline(out, key, make)


def _sizes(pipe) -> dict[str, int]:  # noqa: ANN001 - a diffusers pipeline
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "unet_params": count(pipe.unet),
        "vae_params": count(pipe.vae),
        "text_encoder_params": count(pipe.text_encoder),
    }
