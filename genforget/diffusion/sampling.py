"""DDIM sampling with classifier-free guidance (Song et al. 2021; Ho & Salimans 2022)."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from genforget.diffusion.scoring import predict_noise


@torch.no_grad()
def sample(
    model: Any,
    scheduler: Any,
    cond_key: str,
    cond: torch.Tensor,
    null_cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int = 25,
    guidance_scale: float = 3.0,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    desc: str | None = None,
) -> torch.Tensor:
    """One sample per row of ``cond`` (``[N]`` class ids or ``[N, L, D]`` prompt embeddings);
    ``eps = eps(null) + guidance_scale * (eps(cond) - eps(null))``. Returns ``[N, *shape]``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    n = cond.shape[0]
    bar = tqdm(total=n * steps, desc=desc or "sample", disable=None, leave=False)
    for i in range(0, n, batch_size):
        c = cond[i : i + batch_size].to(device)
        b = c.shape[0]
        ddim = DDIMScheduler.from_config(scheduler.config)
        ddim.set_timesteps(steps)
        x = torch.randn((b, *shape), generator=generator).to(device)
        both = torch.cat([c, null_cond.to(device).expand(b, *null_cond.shape[1:])])
        for t in ddim.timesteps:
            eps_c, eps_u = predict_noise(model, torch.cat([x, x]), t.to(device), cond_key, both).chunk(2)
            x = ddim.step(eps_u + guidance_scale * (eps_c - eps_u), t, x).prev_sample
            bar.update(b)
        out.append(x.cpu())
    bar.close()
    model.train(was_training)
    return torch.cat(out)
