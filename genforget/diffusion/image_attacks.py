"""Attacks on an image takedown: can the work still be drawn out of the model?

Each attack is scored with Carlini et al.'s criterion (:mod:`genforget.diffusion.replication`)
and is run on the retrain oracle too, which is the bar: an attack that regenerates the work from
the oracle (which never saw it) measures the attack's own power, not what unlearning left behind.

* :func:`paraphrase_attack`: other wordings and partial captions (``Work.paraphrases``).
* :func:`embedding_attack`: gradient search over the text condition itself (the CLIP hidden
  states the UNet reads), minimising the denoising loss on the work: the textual-inversion
  objective that concept inversion (Pham et al. 2023, arXiv:2308.01508) uses against erased
  models, and a continuous relaxation of UnlearnDiffAtk's prompt search (Zhang et al. 2024,
  arXiv:2310.11868). White-box; the attacker holds the work, as a rights-holder does.
* :func:`relearn_attack`: fine-tune the UNet on a few copies of the work for a few steps and
  see whether extraction comes back faster than it is learnt from scratch by the oracle.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from genforget.diffusion.concept_suite import generate, start_noise
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.pipeline import TextToImage
from genforget.diffusion.replication import extraction
from genforget.diffusion.sampling import sample
from genforget.diffusion.scoring import add_noise, predict_noise, training_target
from genforget.diffusion.t2i_train import T2ITrainConfig, train_text_to_image


@dataclass
class AttackResult:
    """``extraction``: the best share of generations that are copies of the work; ``per``: the
    share per prompt / per step count; ``best_images``: generations of the best setting."""

    extraction: float
    per: dict[str, float]
    best_images: torch.Tensor


def paraphrase_attack(
    model: TextToImage, prompts: list[str], train: torch.Tensor, target: int, n: int, dcfg: DiffusionConfig,
    seed: int = 4321,
) -> AttackResult:  # fmt: skip
    """``n`` generations per prompt; extraction = the best prompt's share of copies of ``train[target]``."""
    gens = generate(model, prompts, n, dcfg, seed=seed)
    per = {p: extraction(g, train, target).copy_of_target for p, g in gens.items()}
    best = max(per, key=per.get)
    return AttackResult(per[best], per, gens[best])


def embedding_attack(
    model: TextToImage, start_prompt: str, work: torch.Tensor, train: torch.Tensor, target: int, n: int,
    dcfg: DiffusionConfig, steps: int = 100, lr: float = 0.05, batch: int = 16, seed: int = 0,
) -> AttackResult:  # fmt: skip
    """Optimise the condition (``[1, L, D]`` text-encoder states, started at ``start_prompt``'s)
    with Adam for ``steps`` steps of ``batch`` noisings of ``work`` (``[3, H, W]``), then draw
    ``n`` images from it. ``per``: extraction from the start condition (step 0) and the end."""
    unet = model.unet
    was = [p.requires_grad for p in unet.parameters()]
    for p in unet.parameters():
        p.requires_grad_(False)
    x0 = model.encode_images(work.unsqueeze(0)).expand(batch, -1, -1, -1)
    start = model.encode([start_prompt])
    emb = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([emb], lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x_t, t, noise = add_noise(model.scheduler, x0, g)
        pred = predict_noise(unet, x_t, t, model.cond_key, emb.expand(batch, -1, -1))
        loss = (pred - training_target(model.scheduler, x0, noise, t)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for p, w in zip(unet.parameters(), was, strict=True):
        p.requires_grad_(w)
    out = {}
    for name, cond in (("step 0", start), (f"step {steps}", emb.detach())):
        lat = sample(unet, model.scheduler, model.cond_key, cond.expand(n, -1, -1), model.null(),
                     model.sample_shape, dcfg.sample_steps, dcfg.guidance_scale,
                     noise=start_noise(model, n, seed + 1))  # fmt: skip
        imgs = model.decode(lat)
        out[name] = (extraction(imgs, train, target).copy_of_target, imgs)
    best = max(out, key=lambda k: out[k][0])
    return AttackResult(out[best][0], {k: v[0] for k, v in out.items()}, out[best][1])


def relearn_attack(
    model: TextToImage, caption: str, work: torch.Tensor, train: torch.Tensor, target: int, n: int,
    dcfg: DiffusionConfig, steps: tuple[int, ...] = (0, 5, 10, 20, 40), copies: int = 4,
    learning_rate: float = 1e-3, seed: int = 0,
) -> AttackResult:  # fmt: skip
    """For each step count: a copy of ``model`` fine-tuned (whole UNet, AdamW) on ``copies``
    copies of ``work`` with ``caption`` for that many steps, then ``n`` generations of
    ``caption``. ``per``: extraction by step count (keys ``"0"``, ``"5"`` ...); ``extraction``:
    the largest."""
    latents = model.encode_images(work.unsqueeze(0)).expand(copies, -1, -1, -1).contiguous()
    per, imgs = {}, {}
    for s in steps:
        m = model
        if s > 0:
            m = TextToImage(copy.deepcopy(model.pipe), model.source, model.name)
            for p in m.unet.parameters():
                p.requires_grad_(True)
            cfg = T2ITrainConfig(
                steps=s, batch_size=copies, learning_rate=learning_rate, p_uncond=0.0, seed=seed
            )
            train_text_to_image(m, [caption] * copies, cfg, latents=latents)
        g = generate(m, [caption], n, dcfg, seed=seed + 7)[caption]
        per[str(s)], imgs[str(s)] = extraction(g, train, target).copy_of_target, g
    best = max(per, key=per.get)
    return AttackResult(per[best], per, imgs[best])
