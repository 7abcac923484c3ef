"""The diffusion unlearning loop: forget/retain images -> Scores -> method loss -> optimizer.

Same shape as :mod:`genforget.lm.trainer`: a method only sees ``Scores``; this loop decides what
the forget prediction is regressed onto (``method.diffusion_target``), applies SalUn's saliency
mask when asked, and runs plain, LoRA-wrapped and ``accelerate``-prepared models alike.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from genforget.adapters import add_lora, reference_mode
from genforget.config import UnlearnConfig
from genforget.diffusion.data import DiffusionConfig, DiffusionTask
from genforget.diffusion.models import DIFFUSION_LORA_TARGETS
from genforget.diffusion.sampling import sample
from genforget.diffusion.scoring import add_noise, denoising_scores, esd_target, mse_scores, predict_noise
from genforget.loop import cycle, top_share_masks
from genforget.registry import get_method


def saliency_masks(
    model: Any,
    params: list[torch.nn.Parameter],
    scheduler: Any,
    images: torch.Tensor,
    cond: torch.Tensor,
    cond_key: str,
    ratio: float,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """SalUn's weight-saliency mask (Fan et al. 2024, arXiv:2310.12508, Eq. 6): ``|grad|`` of the
    forget set's denoising loss over one pass, thresholded globally so that the top ``ratio``
    share of weights is ``True`` (the paper's hard threshold, set by a share as in its code)."""
    device = params[0].device
    model.zero_grad(set_to_none=True)
    for i in range(0, len(images), batch_size):
        x0, c = images[i : i + batch_size].to(device), cond[i : i + batch_size].to(device)
        nll = denoising_scores(model, scheduler, x0, cond_key, c, generator).nll
        (nll.sum() / len(images)).backward()
    grads = [p.grad.abs() if p.grad is not None else torch.zeros_like(p) for p in params]
    model.zero_grad(set_to_none=True)
    return top_share_masks(grads, ratio)


def unlearn_diffusion(
    model: Any,
    scheduler: Any,
    task: DiffusionTask,
    config: UnlearnConfig,
    diffusion_config: DiffusionConfig | None = None,
    accelerator: Accelerator | None = None,
) -> Any:
    """Erase ``task``'s class/concept from the noise-prediction ``model`` with ``config.method``.

    Forget ``Scores`` are ``-MSE`` to the method's target: the sampled noise (grad_ascent,
    grad_diff, npo, simnpo), ESD's negatively guided frozen prediction on the frozen model's own
    samples (``esd``, Gandikota et al. 2023, arXiv:2303.07345) or the frozen prediction for a
    random other class/prompt (``salun``, Fan et al. 2024, arXiv:2310.12508). The frozen model is
    the base with the adapter off under LoRA, else a frozen copy (diffusion inputs are random
    per step, so unlike LM reference log-probs they cannot be cached). Returns the trained model
    (a ``PeftModel`` when ``config.use_lora``; the base weights then stay bit-identical).
    """
    method = get_method(config.method)(config)
    if "diffusion" not in method.modalities:
        raise ValueError(f"method {config.method!r} is for {method.modalities} models, not diffusion models")
    dcfg = diffusion_config or DiffusionConfig()
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed + accelerator.process_index)
    key = task.cond_key

    if config.use_lora:
        if not config.lora_target_modules:  # unset: diffusers' attention projections
            config = dataclasses.replace(config, lora_target_modules=DIFFUSION_LORA_TARGETS)
        model = add_lora(model, config)
    model.to(accelerator.device)
    device = accelerator.device

    if method.diffusion_target == "esd":
        # ESD trains on the model's own samples of the concept; drawn once, before any update
        # (so the current model is still the frozen one).
        n = dcfg.num_model_samples
        cond = task.forget_cond[torch.arange(n) % len(task.forget_cond)]
        images = sample(
            model, scheduler, key, cond, task.null_cond, task.sample_shape,
            dcfg.sample_steps, dcfg.guidance_scale, g, desc="esd: sampling the concept",
        )  # fmt: skip
    elif task.forget_images is None:
        raise ValueError(
            f"method {config.method!r} needs forget images (forget_images); give images of the concept, "
            "or use method 'esd', which trains on the model's own samples"
        )
    else:
        images, cond = task.forget_images, task.forget_cond
    needs_frozen = method.needs_ref or method.diffusion_target != "noise"
    frozen = (
        copy.deepcopy(model).eval().requires_grad_(False) if needs_frozen and not config.use_lora else None
    )

    params = [p for p in model.parameters() if p.requires_grad]
    masks = None
    if method.saliency and not config.use_lora:
        masks = saliency_masks(
            model, params, scheduler, images, cond, key, config.saliency_ratio, config.batch_size, g
        )
    forget_dl = DataLoader(
        TensorDataset(images, cond), batch_size=config.batch_size, shuffle=True, generator=g
    )
    retain_dl = None
    if method.uses_retain and task.retain_images is not None and config.retain_weight > 0:
        retain_dl = DataLoader(
            TensorDataset(task.retain_images, task.retain_cond),
            batch_size=config.retain_batch_size,
            shuffle=True,
            generator=g,
        )
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    model, opt, forget_dl = accelerator.prepare(model, opt, forget_dl)
    retain_it = cycle(accelerator.prepare(retain_dl)) if retain_dl is not None else None
    forget_it = cycle(forget_dl)
    raw = accelerator.unwrap_model(model)

    def frozen_eps(x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if frozen is not None:
            with torch.no_grad():
                return predict_noise(frozen, x_t, t, key, c)
        with reference_mode(raw):
            return predict_noise(raw, x_t, t, key, c)

    model.train()
    bar = tqdm(
        range(config.max_steps),
        desc=f"unlearn[{config.method}]",
        disable=None if accelerator.is_main_process else True,
    )
    for _ in bar:
        x0, c = next(forget_it)
        x_t, t, noise = add_noise(scheduler, x0, g)
        if method.diffusion_target == "noise":
            target = noise
        elif method.diffusion_target == "esd":
            null = task.null_cond.to(device).expand(len(c), *task.null_cond.shape[1:])
            target = esd_target(frozen_eps(x_t, t, c), frozen_eps(x_t, t, null), config.esd_eta)
        elif method.diffusion_target == "relabel":
            pick = torch.randint(0, len(task.other_conds), (len(c),), generator=g)
            target = frozen_eps(x_t, t, task.other_conds[pick].to(device))
        else:
            raise ValueError(
                f"unknown diffusion_target {method.diffusion_target!r} of method {config.method!r}"
            )
        scores = mse_scores(predict_noise(model, x_t, t, key, c), target)
        if method.needs_ref:
            scores.ref_logp = mse_scores(frozen_eps(x_t, t, c), target).logp
        retain_scores = None
        if retain_it is not None:
            xr, cr = next(retain_it)
            retain_scores = denoising_scores(model, scheduler, xr, key, cr, g)
        loss = method.loss(scores, retain_scores)
        accelerator.backward(loss)
        if masks is not None:
            for p, m in zip(params, masks, strict=True):
                if p.grad is not None:
                    p.grad.mul_(m)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.4f}", forget_mse=f"{scores.nll.mean().item():.4f}")
    model.eval()
    return accelerator.unwrap_model(model)
