"""Train a text-to-image pipeline's UNet (and a tiny VAE) on image–caption pairs.

The loop of diffusers' ``train_text_to_image.py`` at small scale: images -> VAE latents (x the
VAE's ``scaling_factor``), captions -> the pipeline's own prompt encoding, a share ``p_uncond`` of
captions replaced by the unconditional input (classifier-free guidance training, Ho & Salimans
2022), noise and timesteps from the pipeline's scheduler config, the loss to its prediction type
(:func:`genforget.diffusion.scoring.training_target`). Used to make victims and retrain-without
oracles for tests and demos; text encoders and VAE stay frozen, as in Stable Diffusion training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from genforget.diffusion.cond import cond_index
from genforget.diffusion.pipeline import TextToImage
from genforget.diffusion.scoring import (
    add_noise,
    mse_scores,
    predict_noise,
    training_scheduler,
    training_target,
)
from genforget.loop import clipped_step


@dataclass
class T2ITrainConfig:
    """How a text-to-image UNet is trained (demos cache the result keyed by these values)."""

    steps: int = field(default=1200, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=64, metadata={"help": "image–caption pairs per step"})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW learning rate (cosine decay)"})
    p_uncond: float = field(
        default=0.1, metadata={"help": "share of captions replaced by the unconditional input"}
    )
    seed: int = field(default=0, metadata={"help": "shuffling, dropout and noise seed"})

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size) < 1 or self.learning_rate <= 0 or not 0 <= self.p_uncond < 1:
            raise ValueError("steps and batch_size must be >= 1, learning_rate > 0, p_uncond in [0, 1)")


def _batches(n: int, batch_size: int, g: torch.Generator):
    while True:  # shuffled epochs, each index once per epoch
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[i : i + batch_size]


def train_vae(
    vae: Any, images: torch.Tensor, steps: int = 300, batch_size: int = 32, learning_rate: float = 2e-3,
    kl_weight: float = 1e-6, seed: int = 0,
) -> float:  # fmt: skip
    """Fit ``vae`` (an ``AutoencoderKL``) to ``images`` in [-1, 1]: reconstruction MSE + a small
    KL term (as Stable Diffusion's VAE, minus its perceptual and GAN losses), then set its config's
    ``scaling_factor`` to 1 / std of the latents, as SD did, so the UNet sees unit-variance
    latents. Returns seconds."""
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    vae.train()
    it = _batches(len(images), batch_size, g)
    bar = tqdm(range(steps), desc="train VAE", disable=None)
    for _ in bar:
        x = images[next(it)]
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample(generator=g)).sample
        loss = (rec - x).pow(2).mean() + kl_weight * post.kl().mean()
        clipped_step(loss, vae.parameters(), opt, sched)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        z = torch.cat([vae.encode(images[i : i + 256]).latent_dist.mean for i in range(0, len(images), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    return time.perf_counter() - t0


def train_text_to_image(
    model: TextToImage,
    captions: list[str],
    cfg: T2ITrainConfig,
    images: torch.Tensor | None = None,
    latents: torch.Tensor | None = None,
) -> dict[str, float]:
    """Train ``model.unet`` on ``(images or latents, captions)``; returns ``{"seconds", "loss"}``
    (the mean loss of the last 50 steps). ``latents``: already scaled VAE latents (else encoded
    from ``images`` once)."""
    t0 = time.perf_counter()
    if latents is None:
        if images is None:
            raise ValueError("give images or latents to train on")
        latents = model.encode_images(images)
    if len(latents) != len(captions):
        raise ValueError(f"{len(latents)} images but {len(captions)} captions")
    unet, key = model.unet, model.cond_key
    sched = training_scheduler(model.scheduler)
    cond, null = model.encode(captions), model.null()
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    unet.train()
    it = _batches(len(latents), min(cfg.batch_size, len(latents)), g)
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="train text-to-image UNet", disable=None)
    for _ in bar:
        idx = next(it)
        drop = torch.rand(len(idx), generator=g) < cfg.p_uncond
        c = cond_index(cond, idx)
        if drop.any():
            c = _replace_rows(c, drop, null)
        x0 = latents[idx]
        x_t, t, noise = add_noise(sched, x0, g)
        loss = mse_scores(
            predict_noise(unet, x_t, t, key, c), training_target(sched, x0, noise, t)
        ).nll.mean()
        clipped_step(loss, params, opt, lr_sched)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    unet.eval()
    tail = losses[-50:]
    return {"seconds": time.perf_counter() - t0, "loss": sum(tail) / len(tail)}


def _replace_rows(c: Any, mask: torch.Tensor, null: Any) -> Any:
    """``c`` with the rows where ``mask`` is set replaced by the one-row ``null``."""
    if isinstance(c, dict):
        return {k: _replace_rows(v, mask, null[k]) for k, v in c.items()}
    c = c.clone()
    c[mask] = null.to(c.dtype).expand(int(mask.sum()), *null.shape[1:])
    return c
