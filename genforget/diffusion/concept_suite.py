"""The concept-erasure suite: the erased concept and the kept ones, before and after, judged.

Every model (victim, unlearned, retrained oracle ...) generates ``n`` images per prompt from the
same starting noise (paired comparison), with the pipeline's own sampler and VAE; a
:class:`~genforget.diffusion.concept_judge.ConceptJudge` fitted on the victim's generations (a
separate draw) says, per prompt, which share of the images show the prompt's concept. Reported
per model: ``erased_concept_accuracy`` (the erased prompt's share; goal <= 0.10),
``kept_concept_accuracy`` (mean over the kept prompts) and, against the victim,
``worst_kept_ratio`` (the smallest kept share / the victim's; goal >= 0.9).
"""

from __future__ import annotations

from typing import Any

import torch

from genforget.diffusion.concept_judge import ConceptJudge, concept_accuracy
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.pipeline import TextToImage
from genforget.diffusion.sampling import sample

ERASED_MAX = 0.10
KEPT_MIN_RATIO = 0.90


def start_noise(model: TextToImage, n: int, seed: int) -> torch.Tensor:
    """The starting latents :func:`generate` uses for ``n`` images with ``seed`` (one draw)."""
    return torch.randn((n, *model.sample_shape), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    model: TextToImage,
    prompts: list[str],
    n: int,
    dcfg: DiffusionConfig,
    seed: int = 1234,
    unet: Any = None,
    decode: bool = True,
) -> dict[str, torch.Tensor]:
    """``n`` images per prompt (``[n, 3, H, W]`` in [-1, 1]; latents with ``decode=False``) from
    ``unet`` (default: the pipeline's own) with the pipeline's scheduler; the same ``seed`` gives
    every model the same starting noise."""
    unet = model.unet if unet is None else unet
    cond = model.encode([p for p in prompts for _ in range(n)])
    noise = start_noise(model, len(prompts) * n, seed)
    latents = sample(unet, model.scheduler, model.cond_key, cond, model.null(), model.sample_shape,
                     dcfg.sample_steps, dcfg.guidance_scale, torch.Generator().manual_seed(seed),
                     desc="generate", noise=noise)  # fmt: skip
    images = model.decode(latents) if decode else latents
    return {p: images[i * n : (i + 1) * n] for i, p in enumerate(prompts)}


def erasure_table(
    judge: ConceptJudge, samples: dict[str, dict[str, torch.Tensor]], erased: str, victim: str = "victim"
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """``(models, per_prompt)``: the headline metrics of each model's samples
    (``samples[model][prompt]``) and each prompt's judged share. The ratio to ``victim`` is
    reported when that model is among them."""
    per = {name: concept_accuracy(judge, s) for name, s in samples.items()}
    kept = [p for p in judge.classes if p != erased]
    models: dict[str, dict[str, float]] = {}
    for name, acc in per.items():
        row = {
            "erased_concept_accuracy": acc[erased],
            "kept_concept_accuracy": sum(acc[p] for p in kept) / len(kept),
        }
        if victim in per:
            row["worst_kept_ratio"] = min(acc[p] / max(per[victim][p], 1e-9) for p in kept)
        models[name] = row
    return models, per


def erasure_checks(models: dict[str, dict[str, float]], unlearned: str = "unlearned") -> list[dict]:
    """The goal as checks: the victim draws the concept, the unlearned model does not, the kept
    concepts hold."""
    v, u = models["victim"], models[unlearned]
    rows = [
        ("victim: erased concept judged as it", v["erased_concept_accuracy"], ">= 0.80",
         v["erased_concept_accuracy"] >= 0.8),
        (f"{unlearned}: erased concept judged as it", u["erased_concept_accuracy"], f"<= {ERASED_MAX:.2f}",
         u["erased_concept_accuracy"] <= ERASED_MAX),
        (f"{unlearned}: worst kept concept / victim", u["worst_kept_ratio"], f">= {KEPT_MIN_RATIO:.2f}",
         u["worst_kept_ratio"] >= KEPT_MIN_RATIO),
    ]  # fmt: skip
    return [{"name": n, "value": float(val), "bar": bar, "ok": bool(ok)} for n, val, bar, ok in rows]


def save_image_grid(
    samples: dict[str, dict[str, torch.Tensor]], k: int, path: Any, title: str, marked: str | None = None
) -> None:
    """One row per prompt, one block of ``k`` images per model (``samples[model][prompt]``, RGB in
    [-1, 1]); the ``marked`` prompt's row label gets a ``*``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(samples)
    prompts = list(samples[models[0]])
    fig, axes = plt.subplots(len(prompts), len(models), squeeze=False,
                             figsize=(len(models) * k * 0.5 + 1.6, len(prompts) * 0.62 + 0.9))  # fmt: skip
    for row, p in enumerate(prompts):
        for col, name in enumerate(models):
            imgs = samples[name][p][:k]
            strip = torch.cat(list(imgs), dim=2)  # [3, H, k*W]
            ax = axes[row, col]
            ax.imshow(((strip.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=8)
            if col == 0:
                label = p.removeprefix("a photo of ").removeprefix("a ").removeprefix("an ")
                ax.set_ylabel(label + (" *" if p == marked else ""), rotation=0, ha="right", va="center",
                              fontsize=7)  # fmt: skip
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
