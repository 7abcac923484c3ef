"""Per-example diffusion ``Scores``: ``logp = -MSE`` of a noise prediction, ``nll = MSE``.

The denoising MSE at a sampled timestep and noise is the usual per-example stand-in for the
log-likelihood (an ELBO term; as in Diffusion-DPO, Wallace et al. 2023, arXiv:2311.12908), so
``grad_ascent``, ``grad_diff``, ``npo`` and ``simnpo`` run on diffusion models unchanged. The
regression target is the sampled noise for the plain denoising loss, or a prediction of the
frozen model for ESD / SalUn (:func:`esd_target`); the MSE is always to that target.
"""

from __future__ import annotations

from typing import Any

import torch

from genforget.scores import Scores


def predict_noise(
    model: Any, x_t: torch.Tensor, t: torch.Tensor, cond_key: str, cond: torch.Tensor
) -> torch.Tensor:
    """``eps_theta(x_t, t, cond)`` of a class-conditional (``class_labels``) or text-conditional
    (``encoder_hidden_states``) UNet, plain, LoRA-wrapped or DDP-wrapped."""
    return model(x_t, t, **{cond_key: cond}).sample


def add_noise(
    scheduler: Any, x0: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, t, noise)``: a uniform timestep per example and Gaussian noise, ``q(x_t | x0)``."""
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator)
    t = t.to(x0.device)
    return scheduler.add_noise(x0, noise, t), t, noise


def mse_scores(pred: torch.Tensor, target: torch.Tensor) -> Scores:
    """Per-example MSE (mean over channels and pixels) as ``Scores(logp=-mse, nll=mse)``."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return Scores(logp=-mse, nll=mse)


def esd_target(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, eta: float) -> torch.Tensor:
    """ESD's target ``eps*(x_t) - eta * (eps*(x_t, c) - eps*(x_t))`` from frozen predictions
    (Gandikota et al. 2023, "Erasing Concepts from Diffusion Models", arXiv:2303.07345, Eq. 7)."""
    return eps_uncond - eta * (eps_cond - eps_uncond)


def denoising_scores(
    model: Any,
    scheduler: Any,
    x0: torch.Tensor,
    cond_key: str,
    cond: torch.Tensor,
    generator: torch.Generator | None = None,
) -> Scores:
    """The plain denoising ``Scores`` of a batch: noise ``x0`` at random ``t``, predict the noise."""
    x_t, t, noise = add_noise(scheduler, x0, generator)
    return mse_scores(predict_noise(model, x_t, t, cond_key, cond), noise)
