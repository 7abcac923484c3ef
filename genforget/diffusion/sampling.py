"""Sampling with classifier-free guidance (Ho & Salimans 2022) and the pipeline's own scheduler.

The sampler is a fresh copy of the scheduler the model ships with (Euler, DDIM, PNDM, DPM-Solver
...: its class and config, so its timestep spacing, prediction type and clipping are the
pipeline's), run the way ``StableDiffusionPipeline.__call__`` runs it: start noise scaled by
``init_noise_sigma``, ``scale_model_input`` before each UNet call, ``step`` after. The one
substitution: a class-conditional model's ``DDPMScheduler`` (the digits models genforget trains
ship one) samples with DDIM from the same config (Song et al. 2021), as it always has; a
text-to-image pipeline samples with exactly the class it ships, DDPM included.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from tqdm.auto import tqdm

from genforget.diffusion.cond import Cond, cond_cat, cond_expand, cond_index, cond_len, cond_to
from genforget.diffusion.scoring import predict_noise


def sampling_scheduler(scheduler: Any, ddpm_as_ddim: bool = False) -> Any:
    """A fresh (stateless) sampler of ``scheduler``'s class and config (``ddpm_as_ddim``: a DDPM
    config samples with DDIM)."""
    if ddpm_as_ddim and isinstance(scheduler, DDPMScheduler):
        return DDIMScheduler.from_config(scheduler.config)
    return type(scheduler).from_config(scheduler.config)


@torch.no_grad()
def sample(
    model: Any,
    scheduler: Any,
    cond_key: str,
    cond: Cond,
    null_cond: Cond,
    shape: tuple[int, ...],
    steps: int = 25,
    guidance_scale: float = 3.0,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    desc: str | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One sample per row of ``cond`` (class ids, prompt embeddings or SDXL condition dicts);
    ``pred = pred(null) + guidance_scale * (pred(cond) - pred(null))``. ``noise``: the starting
    noise ``[N, *shape]`` (else drawn from ``generator``). Returns ``[N, *shape]`` (latents for a
    latent pipeline: decode them with :func:`genforget.diffusion.pipeline.decode_latents`)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    n = cond_len(cond)
    bar = tqdm(total=n * steps, desc=desc or "sample", disable=None, leave=False)
    for i in range(0, n, batch_size):
        c = cond_to(cond_index(cond, slice(i, i + batch_size)), device)
        b = cond_len(c)
        sched = sampling_scheduler(scheduler, ddpm_as_ddim=cond_key == "class_labels")
        sched.set_timesteps(steps)
        step_kw = {"generator": generator} if "generator" in inspect.signature(sched.step).parameters else {}
        x = noise[i : i + b] if noise is not None else torch.randn((b, *shape), generator=generator)
        x = x.to(device) * sched.init_noise_sigma
        guided = guidance_scale != 1.0
        both = cond_cat([c, cond_expand(cond_to(null_cond, device), b)]) if guided else c
        for t in sched.timesteps:
            inp = sched.scale_model_input(torch.cat([x, x]) if guided else x, t)
            pred = predict_noise(model, inp, t.to(device), cond_key, both)
            if guided:
                pred_c, pred_u = pred.chunk(2)
                pred = pred_u + guidance_scale * (pred_c - pred_u)
            x = sched.step(pred, t, x, **step_kw).prev_sample
            bar.update(b)
        out.append(x.cpu())
    bar.close()
    model.train(was_training)
    return torch.cat(out)
