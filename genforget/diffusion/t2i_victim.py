"""Tiny text-to-image victims and retrain-without oracles, trained offline and cached on disk.

:func:`cached_pipeline` keeps a trained pipeline dir keyed by everything that made it (config and
data), so a demo's second run loads instead of training; :func:`shapes_victim_and_oracle` makes
the concept-erasure demo's pair: a tiny Stable Diffusion pipeline trained on the built-in shapes
captions, and the same recipe retrained without the erased caption (the oracle: what a model that
never learned the concept draws). Both share one VAE, trained first, as real SD fine-tunes share
theirs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genforget.diffusion.pipeline import TextToImage, load_pipeline
from genforget.diffusion.shapes import CONCEPTS_A, shapes_dataset
from genforget.diffusion.t2i_train import T2ITrainConfig, train_text_to_image, train_vae
from genforget.train_cache import train_or_load


@dataclass(kw_only=True)
class TinyT2IConfig:
    """The size and training of a tiny text-to-image victim (VAE + UNet), shared by the shapes
    victim here and the works victim (:mod:`genforget.diffusion.works_victim`). Keyword-only, so a
    subclass's positional fields (``ShapesPipelineConfig(concepts, images_per_concept)``) stay first."""

    image_size: int = field(default=32, metadata={"help": "pixels (latents are a quarter of it)"})
    vae_steps: int = field(default=200, metadata={"help": "steps of tiny-VAE training"})
    train_steps: int = field(default=1000, metadata={"help": "UNet training steps (victim and oracle alike)"})
    train_batch_size: int = field(default=64, metadata={"help": "pairs per UNet step"})
    train_learning_rate: float = field(default=2e-3, metadata={"help": "UNet AdamW learning rate"})
    seed: int = field(default=0, metadata={"help": "init, data and training seed"})

    def train_config(self, steps: int | None = None, seed_offset: int = 0) -> T2ITrainConfig:
        """The UNet training run: ``steps`` (default ``train_steps``) at the config's batch size
        and rate; ``seed_offset`` gives a later phase its own shuffling/noise seed."""
        steps = self.train_steps if steps is None else steps
        return T2ITrainConfig(
            steps, self.train_batch_size, self.train_learning_rate, seed=self.seed + seed_offset
        )


@dataclass
class ShapesPipelineConfig(TinyT2IConfig):
    """What the shapes victim is trained on and how (the cache key)."""

    concepts: list[str] = field(default_factory=lambda: list(CONCEPTS_A), metadata={"help": "captions"})
    images_per_concept: int = field(default=128, metadata={"help": "rendered training images per caption"})
    prediction_type: str = field(default="epsilon", metadata={"help": "epsilon or v_prediction"})


def cached_pipeline(
    out: Path, key: dict, make: Callable[[], tuple[TextToImage, dict]]
) -> tuple[TextToImage, dict]:
    """The pipeline in ``out`` when it was trained with ``key``; else ``make()`` it and save it
    (:func:`genforget.train_cache.train_or_load`: atomic, fingerprinted). ``info``: what ``make``
    reports (seconds ...) and ``cached``; the pipeline is always the one read back from ``out``."""

    def save(model: TextToImage, tmp: Path) -> None:
        model.pipe.save_pretrained(str(tmp), safe_serialization=True)

    return train_or_load(out, key, make, save, load_pipeline, reload=True)


def _shapes_data(cfg: ShapesPipelineConfig):
    key = {"config": dataclasses.asdict(cfg), "data": "genforget.diffusion.shapes"}
    return key, *shapes_dataset(cfg.concepts, cfg.images_per_concept, cfg.image_size, cfg.seed)


def shapes_victim(
    cfg: ShapesPipelineConfig, out: Path, log: Callable[[str], None] = print
) -> tuple[TextToImage, dict]:
    """The victim trained on every caption of ``cfg.concepts`` (a tiny VAE first, then the UNet),
    cached in ``out``; ``info``: seconds and whether it came from the cache."""
    from genforget.diffusion.tiny import build_tiny_sd_pipeline

    key, images, captions = _shapes_data(cfg)

    def make() -> tuple[TextToImage, dict]:
        log(f"victim: training a tiny VAE ({cfg.vae_steps} steps) and UNet ({cfg.train_steps} steps) "
            f"on {len(captions)} images of {len(cfg.concepts)} captions")  # fmt: skip
        pipe = build_tiny_sd_pipeline(cfg.seed, cfg.image_size, cfg.prediction_type)
        vae_s = train_vae(pipe.vae, images, steps=cfg.vae_steps, seed=cfg.seed)
        model = TextToImage(pipe, None, "tiny-shapes-victim")
        r = train_text_to_image(model, captions, cfg.train_config(), images=images)
        return model, {"vae_s": vae_s, "unet_s": r["seconds"], "final_loss": r["loss"]}

    return cached_pipeline(out, key, make)


def shapes_victim_and_oracle(
    cfg: ShapesPipelineConfig, erased: str, out: Path, log: Callable[[str], None] = print
) -> tuple[TextToImage, TextToImage, dict]:
    """``(victim, oracle, info)``: :func:`shapes_victim` in ``out/victim``, and the oracle trained
    on all captions but ``erased`` (same init, VAE, steps and seed) in ``out/oracle``. ``info``:
    seconds of each part and whether both came from the cache."""
    from genforget.diffusion.tiny import build_tiny_sd_pipeline

    if erased not in cfg.concepts:
        raise ValueError(f"the concept to erase must be one of the victim's captions {cfg.concepts}")
    victim, vinfo = shapes_victim(cfg, out / "victim", log)
    key, images, captions = _shapes_data(cfg)

    def make_oracle() -> tuple[TextToImage, dict]:
        log("oracle: the same training without the erased caption")
        pipe = build_tiny_sd_pipeline(cfg.seed, cfg.image_size, cfg.prediction_type, vae=victim.vae)
        model = TextToImage(pipe, None, "tiny-shapes-oracle")
        keep = [i for i, c in enumerate(captions) if c != erased]
        r = train_text_to_image(model, [captions[i] for i in keep], cfg.train_config(), images=images[keep])
        return model, {"unet_s": r["seconds"], "final_loss": r["loss"]}

    oracle, oinfo = cached_pipeline(out / "oracle", {**key, "without_sha256": _sha(erased)}, make_oracle)
    timings = {
        "train_vae_s": vinfo["vae_s"],
        "train_victim_s": vinfo["unet_s"],
        "train_oracle_s": oinfo["unet_s"],
    }
    timings["cached"] = bool(vinfo["cached"] and oinfo["cached"])
    return victim, oracle, timings


def _sha(text: str) -> str:
    from genforget.cards import sha256_text

    return sha256_text(text)
