"""Train the embedded benchmark's victim: a tiny class-conditional DDPM on the sklearn digits.

Classifier-free guidance training (Ho & Salimans 2022): ``p_uncond`` of the labels are replaced by
the null class, so one network predicts both conditional and unconditional noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from genforget.common_args import arg
from genforget.diffusion.models import build_class_unet, build_scheduler
from genforget.diffusion.scoring import denoising_scores
from genforget.loop import clipped_step


@dataclass
class DDPMTrainConfig:
    """How the digits DDPM is trained (the demo caches the result keyed by these values)."""

    epochs: int = arg(40, "passes over the 1,797 digits")
    batch_size: int = arg(64, "images per step")
    learning_rate: float = arg(2e-3, "AdamW learning rate (cosine decay)")
    p_uncond: float = arg(0.1, "share of labels replaced by the null class")
    block_out_channels: list[int] = arg(factory=lambda: [32, 64], help="UNet widths")
    seed: int = arg(0, "init, shuffling and noise seed")


def train_class_ddpm(
    images: torch.Tensor, labels: torch.Tensor, cfg: DDPMTrainConfig, num_classes: int = 10
) -> tuple[UNet2DModel, DDPMScheduler, float]:
    """Train a class-conditional DDPM from scratch; returns ``(unet, scheduler, seconds)``."""
    t0 = time.perf_counter()
    unet = build_class_unet(
        num_classes, images.shape[-1], images.shape[1], tuple(cfg.block_out_channels), cfg.seed
    )
    scheduler = build_scheduler()
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.learning_rate)
    steps_per_epoch = -(-len(images) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)
    unet.train()
    bar = tqdm(range(cfg.epochs), desc="train digits DDPM", disable=None)
    for _ in bar:
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            y = labels[idx].clone()
            y[torch.rand(len(idx), generator=g) < cfg.p_uncond] = num_classes
            loss = denoising_scores(unet, scheduler, images[idx], "class_labels", y, g).nll.mean()
            clipped_step(loss, unet.parameters(), opt, sched)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    unet.eval()
    return unet, scheduler, time.perf_counter() - t0
