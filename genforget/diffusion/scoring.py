"""Per-example diffusion ``Scores``: ``logp = -MSE`` of a UNet prediction, ``nll = MSE``.

The denoising MSE at a sampled timestep and noise is the usual per-example stand-in for the
log-likelihood (an ELBO term; as in Diffusion-DPO, Wallace et al. 2023, arXiv:2311.12908), so
``grad_ascent``, ``grad_diff``, ``npo`` and ``simnpo`` run on diffusion models unchanged. The
regression target is what the model was trained to predict — the noise (``epsilon``), the
velocity (``v_prediction``, Salimans & Ho 2022) or the clean sample (``sample``), as the
pipeline's scheduler config says (:func:`training_target`) — or a prediction of the frozen model
for ESD / SalUn (:func:`esd_target`); the MSE is always to that target.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDPMScheduler

from genforget.diffusion.cond import Cond, unet_kwargs
from genforget.scores import Scores

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def training_scheduler(scheduler: Any) -> DDPMScheduler:
    """The forward (noising) process of ``scheduler``'s config as a ``DDPMScheduler``, as diffusers'
    training scripts build it: same betas, timesteps and ``prediction_type``, whatever sampler the
    pipeline ships (Euler, DDIM, PNDM ...). Noising never clips: ``clip_sample`` only acts in
    ``step``, which training never calls."""
    if isinstance(scheduler, DDPMScheduler):
        return scheduler
    name = type(scheduler).__name__
    if "FlowMatch" in name or not hasattr(scheduler.config, "beta_schedule"):
        raise ValueError(
            f"the pipeline's scheduler {name} is not a DDPM-family noise schedule (betas, "
            "num_train_timesteps); flow-matching pipelines (SD3, Flux) are not supported"
        )
    return DDPMScheduler.from_config(scheduler.config, clip_sample=False)


def prediction_type(scheduler: Any) -> str:
    """What the UNet predicts, from the scheduler config (diffusers' default: ``epsilon``)."""
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise ValueError(
            f"unsupported prediction_type {kind!r} in the scheduler config (one of {PREDICTION_TYPES})"
        )
    return kind


def training_target(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet regresses onto at ``x_t = add_noise(x0, noise, t)``: the noise, the velocity
    ``sqrt(a_t) * noise - sqrt(1 - a_t) * x0`` (``scheduler.get_velocity``) or ``x0``."""
    kind = prediction_type(scheduler)
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return training_scheduler(scheduler).get_velocity(x0, noise, t)
    return x0


def predict_noise(model: Any, x_t: torch.Tensor, t: torch.Tensor, cond_key: str, cond: Cond) -> torch.Tensor:
    """The UNet's output at ``(x_t, t, cond)`` — the noise, velocity or sample it was trained to
    predict — for a class-conditional (``class_labels``), text-conditional
    (``encoder_hidden_states``) or SDXL (dict with ``text_embeds`` / ``time_ids``) UNet, plain,
    LoRA-wrapped or DDP-wrapped."""
    return model(x_t, t, **unet_kwargs(cond_key, cond)).sample


def add_noise(
    scheduler: Any, x0: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, t, noise)``: a uniform timestep per example and Gaussian noise, ``q(x_t | x0)``
    under ``scheduler``'s training noise schedule."""
    sched = training_scheduler(scheduler)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    t = torch.randint(0, sched.config.num_train_timesteps, (x0.shape[0],), generator=generator)
    t = t.to(x0.device)
    return sched.add_noise(x0, noise, t), t, noise


def mse_scores(pred: torch.Tensor, target: torch.Tensor) -> Scores:
    """Per-example MSE (mean over channels and pixels) as ``Scores(logp=-mse, nll=mse)``."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return Scores(logp=-mse, nll=mse)


def esd_target(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, eta: float) -> torch.Tensor:
    """ESD's target ``eps*(x_t) - eta * (eps*(x_t, c) - eps*(x_t))`` from frozen predictions
    (Gandikota et al. 2023, "Erasing Concepts from Diffusion Models", arXiv:2303.07345, Eq. 7).
    Its weights sum to one, so for a v- or x0-predicting UNet (affine in the noise prediction at a
    fixed ``x_t``) the same combination of its outputs is the same guided target."""
    return eps_uncond - eta * (eps_cond - eps_uncond)


def denoising_scores(
    model: Any,
    scheduler: Any,
    x0: torch.Tensor,
    cond_key: str,
    cond: Cond,
    generator: torch.Generator | None = None,
) -> Scores:
    """The plain denoising ``Scores`` of a batch: noise ``x0`` at random ``t``, MSE of the UNet's
    output to its training target (:func:`training_target`)."""
    x_t, t, noise = add_noise(scheduler, x0, generator)
    target = training_target(scheduler, x0, noise, t)
    return mse_scores(predict_noise(model, x_t, t, cond_key, cond), target)
