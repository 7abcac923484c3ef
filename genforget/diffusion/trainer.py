"""The diffusion unlearning loop: forget/retain images -> Scores -> method loss -> optimizer.

Same shape as :mod:`genforget.lm.trainer`: a method only sees ``Scores``; this loop decides what
the forget prediction is regressed onto (``method.diffusion_target``), applies SalUn's saliency
mask when asked, and runs plain, LoRA-wrapped and ``accelerate``-prepared models alike. Noise,
timesteps and the denoising target come from the model's own scheduler config (its
``prediction_type``); its own samples (ESD's data, forget images when none are given, the anchor
term's samples) come from its own sampler.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from genforget.adapters import add_lora, reference_mode
from genforget.config import UnlearnConfig
from genforget.diffusion.cond import Cond, CondDataset, cond_expand, cond_index, cond_len, cond_to
from genforget.diffusion.data import DiffusionConfig, DiffusionTask
from genforget.diffusion.models import DIFFUSION_LORA_TARGETS
from genforget.diffusion.sampling import sample
from genforget.diffusion.scoring import (
    add_noise,
    denoising_scores,
    esd_target,
    mse_scores,
    predict_noise,
    training_scheduler,
    training_target,
)
from genforget.lm.tracking import RunTracker
from genforget.loop import cycle, top_share_masks
from genforget.methods.registry import get_method
from genforget.scores import Scores


def saliency_masks(
    model: Any,
    params: list[torch.nn.Parameter],
    scheduler: Any,
    images: torch.Tensor,
    cond: Cond,
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
        x0 = images[i : i + batch_size].to(device)
        c = cond_to(cond_index(cond, slice(i, i + batch_size)), device)
        nll = denoising_scores(model, scheduler, x0, cond_key, c, generator).nll
        (nll.sum() / len(images)).backward()
    grads = [p.grad.abs() if p.grad is not None else torch.zeros_like(p) for p in params]
    model.zero_grad(set_to_none=True)
    return top_share_masks(grads, ratio)


def _own_samples(
    model: Any, scheduler: Any, task: DiffusionTask, cond: Cond, dcfg: DiffusionConfig,
    g: torch.Generator, desc: str,
) -> torch.Tensor:  # fmt: skip
    """Samples of the model as it is now (before any update: the frozen model) for ``cond``."""
    return sample(model, scheduler, task.cond_key, cond, task.null_cond, task.sample_shape,
                  dcfg.sample_steps, dcfg.guidance_scale, g, desc=desc)  # fmt: skip


def _repeat_rows(cond: Cond, n: int) -> Cond:
    """``n`` rows cycling through the rows of ``cond``."""
    return cond_index(cond, torch.arange(n) % cond_len(cond))


def unlearn_diffusion(
    model: Any,
    scheduler: Any,
    task: DiffusionTask,
    config: UnlearnConfig,
    diffusion_config: DiffusionConfig | None = None,
    accelerator: Accelerator | None = None,
    info: dict | None = None,
) -> Any:
    """Erase ``task``'s class/concept from the ``model`` (a UNet) with ``config.method``.

    Forget ``Scores`` are ``-MSE`` to the method's target: the denoising target of the scheduler's
    ``prediction_type`` (grad_ascent, grad_diff, npo, simnpo), ESD's negatively guided frozen
    prediction on the frozen model's own samples (``esd``, Gandikota et al. 2023,
    arXiv:2303.07345) or the frozen prediction for a random other class/prompt (``salun``, Fan et
    al. 2024, arXiv:2310.12508). Without ``task.forget_images`` every method trains on the frozen
    model's own samples of the concept, as ESD does (said on stderr and in ``info``).

    The retain term of a method (``retain_weight`` x its NLL) is the denoising loss on
    ``task.retain_images`` and/or the anchor term on ``task.keep_cond``: the frozen model's samples
    for the prompts to keep, on which the model's prediction is held to the frozen one (the
    preservation loss of concept ablation, Kumari et al. 2023, arXiv:2303.13516). The frozen model
    is the base with the adapter off under LoRA, else a frozen copy (diffusion inputs are random
    per step, so unlike LM reference log-probs they cannot be cached). ``info``: filled with what
    the run trained on (counts, never prompts). Returns the trained model (a ``PeftModel`` when
    ``config.use_lora``; the base weights then stay bit-identical).
    """
    method = get_method(config.method)(config)
    if "diffusion" not in method.modalities:
        raise ValueError(f"method {config.method!r} is for {method.modalities} models, not diffusion models")
    dcfg = diffusion_config or DiffusionConfig()
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    info = {} if info is None else info
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed + accelerator.process_index)
    key = task.cond_key
    noise_sched = training_scheduler(scheduler)

    if config.use_lora:
        if not config.lora_target_modules:  # unset: diffusers' attention projections
            config = dataclasses.replace(config, lora_target_modules=DIFFUSION_LORA_TARGETS)
        model = add_lora(model, config)
    model.to(accelerator.device)
    device = accelerator.device

    anchor = None
    if method.diffusion_target == "anchor":
        # Concept ablation: noisy images of the anchor caption (the frozen model's own samples),
        # each paired with the forgotten caption's condition.
        n = dcfg.num_model_samples
        anchor = _repeat_rows(cond_index(task.other_conds, torch.arange(1)), n)
        images = _own_samples(model, scheduler, task, anchor, dcfg, g, "ablate: sampling the anchor")
        cond = _repeat_rows(task.forget_cond, n)
        if task.forget_images is not None:
            print(f"[genforget] ablate trains on the frozen model's samples of the anchor: the "
                  f"{len(task.forget_images)} given forget images are not used", file=sys.stderr)  # fmt: skip
        info["forget_images"] = f"{n} samples of the frozen model for the anchor"
    elif method.diffusion_target == "esd" or task.forget_images is None:
        # The model's own samples of the concept, drawn once before any update (so from the
        # frozen model): ESD's data by design, every other method's when no images are given.
        n = dcfg.num_model_samples
        cond = _repeat_rows(task.forget_cond, n)
        if method.diffusion_target != "esd":
            print(f"[genforget] {config.method}: no forget images given; training on {n} samples of "
                  "the frozen model for the concept", file=sys.stderr)  # fmt: skip
        elif task.forget_images is not None:
            print(f"[genforget] esd trains on the frozen model's own samples: the {len(task.forget_images)} "
                  "given forget images are not used", file=sys.stderr)  # fmt: skip
        images = _own_samples(model, scheduler, task, cond, dcfg, g, f"{config.method}: sampling the concept")
        info["forget_images"] = f"{n} samples of the frozen model"
    else:
        images, cond = task.forget_images, task.forget_cond
        info["forget_images"] = f"{len(images)} given"
    uses_retain = method.uses_retain and config.retain_weight > 0
    anchors = None
    if task.keep_cond is not None and uses_retain:
        n_keep = cond_len(task.keep_cond) * dcfg.keep_samples
        kc = _repeat_rows(task.keep_cond, n_keep)
        anchors = (_own_samples(model, scheduler, task, kc, dcfg, g, "sampling the prompts to keep"), kc)
        info["keep_prompts"] = cond_len(task.keep_cond)
        info["keep_samples"] = n_keep
    elif task.keep_cond is not None:
        why = "ignores retain terms" if not method.uses_retain else "has retain_weight 0"
        print(
            f"[genforget] warning: {config.method} {why}: the prompts to keep are not used", file=sys.stderr
        )
        info["keep_prompts"] = 0
    needs_frozen = method.needs_ref or method.diffusion_target != "noise" or anchors is not None
    frozen = (
        copy.deepcopy(model).eval().requires_grad_(False) if needs_frozen and not config.use_lora else None
    )

    params = [p for p in model.parameters() if p.requires_grad]
    masks = None
    if method.saliency and not config.use_lora:
        masks = saliency_masks(
            model, params, noise_sched, images, cond, key, config.saliency_ratio, config.batch_size, g
        )
    forget_dl = DataLoader(CondDataset(images, cond), batch_size=config.batch_size, shuffle=True, generator=g)
    retain_dl = None
    if uses_retain and task.retain_images is not None:
        retain_dl = DataLoader(
            CondDataset(task.retain_images, task.retain_cond),
            batch_size=config.retain_batch_size,
            shuffle=True,
            generator=g,
        )
    anchor_dl = None
    if anchors is not None:
        anchor_dl = DataLoader(
            CondDataset(*anchors), batch_size=config.retain_batch_size, shuffle=True, generator=g
        )
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    model, opt, forget_dl = accelerator.prepare(model, opt, forget_dl)
    retain_it = cycle(accelerator.prepare(retain_dl)) if retain_dl is not None else None
    anchor_it = cycle(accelerator.prepare(anchor_dl)) if anchor_dl is not None else None
    forget_it = cycle(forget_dl)
    raw = accelerator.unwrap_model(model)

    def frozen_pred(x_t: torch.Tensor, t: torch.Tensor, c: Cond) -> torch.Tensor:
        if frozen is not None:
            with torch.no_grad():
                return predict_noise(frozen, x_t, t, key, c)
        with reference_mode(raw):
            return predict_noise(raw, x_t, t, key, c)

    # report_to: the LM loop's trackers (accelerate's, main process only); forget/retain "NLL"
    # here is the denoising MSE the methods' scores are built from. Numbers only, never prompts.
    tracker = RunTracker(accelerator, config, project="genforget-diffusion")
    tracker.watch(opt)
    pending: list[dict] = []
    model.train()
    bar = tqdm(
        range(config.max_steps),
        desc=f"unlearn[{config.method}]",
        disable=None if accelerator.is_main_process else True,
    )
    for step in bar:
        x0, c = next(forget_it)
        x_t, t, noise = add_noise(noise_sched, x0, g)
        if method.diffusion_target == "noise":
            target = training_target(noise_sched, x0, noise, t)
        elif method.diffusion_target == "esd":
            null = cond_to(cond_expand(task.null_cond, len(x0)), device)
            target = esd_target(frozen_pred(x_t, t, c), frozen_pred(x_t, t, null), config.esd_eta)
        elif method.diffusion_target == "anchor":
            a = cond_to(cond_expand(cond_index(anchor, torch.arange(1)), len(x0)), device)
            target = frozen_pred(x_t, t, a)
        elif method.diffusion_target == "relabel":
            pick = torch.randint(0, cond_len(task.other_conds), (len(x0),), generator=g)
            target = frozen_pred(x_t, t, cond_to(cond_index(task.other_conds, pick), device))
        else:
            raise ValueError(
                f"unknown diffusion_target {method.diffusion_target!r} of method {config.method!r}"
            )
        scores = mse_scores(predict_noise(model, x_t, t, key, c), target)
        if method.needs_ref:
            scores.ref_logp = mse_scores(frozen_pred(x_t, t, c), target).logp
        retain_parts = []
        if retain_it is not None:
            xr, cr = next(retain_it)
            retain_parts.append(denoising_scores(model, noise_sched, xr, key, cr, g).nll)
        if anchor_it is not None:
            xa, ca = next(anchor_it)
            xa_t, ta, _ = add_noise(noise_sched, xa, g)
            retain_parts.append(
                mse_scores(predict_noise(model, xa_t, ta, key, ca), frozen_pred(xa_t, ta, ca)).nll
            )
        retain_scores = None
        if retain_parts:
            nll = torch.cat(retain_parts)
            retain_scores = Scores(logp=-nll, nll=nll)
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
        if tracker.on:
            row = {"step": step, "loss": loss.item(), "forget_nll": scores.nll.mean().item()}
            if retain_scores is not None:
                row["retain_nll"] = retain_scores.nll.mean().item()
            pending.append(row)
            if (step + 1) % config.logging_steps == 0 or step + 1 == config.max_steps:
                tracker.log_rows(pending)
                pending = []
    tracker.finish(None, config.max_steps)
    model.eval()
    return accelerator.unwrap_model(model)
