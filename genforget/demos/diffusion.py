"""The offline diffusion demo: train a digits DDPM -> erase one digit -> judge before / after.

``make demo-diffusion`` runs ``recipes/demo_diffusion.py --config recipes/configs/demo_diffusion.yaml``,
which calls :func:`run_diffusion_demo`. The victim is cached in ``<output_dir>/victim`` keyed by
its training config, so a second run only erases, samples and judges.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from pathlib import Path

import torch

from genforget.config import UnlearnConfig
from genforget.demos.checks import as_dicts, bar_checks, diffusion_report, show_report
from genforget.demos.options import DiffusionDemoArgs
from genforget.diffusion.data import DiffusionConfig, class_task, load_digits_images
from genforget.diffusion.judge import DigitJudge, class_metrics
from genforget.diffusion.models import load_class_model, null_class, save_class_model, save_diffusion_model
from genforget.diffusion.sampling import sample
from genforget.diffusion.trainer import unlearn_diffusion
from genforget.diffusion.victim import DDPMTrainConfig, train_class_ddpm
from genforget.evaluation.report import write_report
from genforget.train_cache import train_or_load


def cached_victim(images: torch.Tensor, labels: torch.Tensor, cfg: DDPMTrainConfig, out: Path) -> tuple:
    """``(unet, scheduler, seconds)``: loaded from ``out`` if it was trained with this exact config
    and data, else trained and saved there (:func:`genforget.train_cache.train_or_load`)."""
    key = {"train": dataclasses.asdict(cfg), "data": "sklearn.load_digits", "n": len(images)}

    def train() -> tuple:
        print(
            f"[demo-diffusion] victim: training a class-conditional DDPM on the digits ({cfg.epochs} epochs)"
        )
        unet, scheduler, seconds = train_class_ddpm(images, labels, cfg)
        return (unet, scheduler), {"seconds": seconds}

    (unet, scheduler), info = train_or_load(
        out, key, train, lambda m, tmp: save_class_model(*m, tmp), load_class_model
    )
    if info["cached"]:
        print(f"[demo-diffusion] victim: cached in {out} (trained in {info['seconds']:.1f}s)")
    return unet, scheduler, info["seconds"]


def sample_classes(
    model, scheduler, n: int, dcfg: DiffusionConfig, seed: int, desc: str
) -> dict[int, torch.Tensor]:
    """``n`` samples per class; the same seed gives the same starting noise for every model."""
    null = null_class(model)
    cond = torch.arange(null).repeat_interleave(n)
    g = torch.Generator().manual_seed(seed)
    x = sample(model, scheduler, "class_labels", cond, torch.tensor([null]), (1, 8, 8),
               dcfg.sample_steps, dcfg.guidance_scale, g, desc=desc)  # fmt: skip
    return {c: x[cond == c] for c in range(null)}


def save_grid(
    before: dict[int, torch.Tensor], after: dict[int, torch.Tensor], k: int, erased: int, path: Path
) -> None:
    """Rows = digits; left block = victim samples, right block = after erasure (same noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(before), 2, figsize=(2 * k * 0.45 + 1, len(before) * 0.55 + 1.0), squeeze=False
    )
    for row, c in enumerate(sorted(before)):
        for col, (name, s) in enumerate((("victim", before), ("after erasure", after))):
            img = torch.cat([s[c][i, 0] for i in range(min(k, len(s[c])))], dim=1)
            ax = axes[row, col]
            ax.imshow(((img + 1) / 2).clamp(0, 1).numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{c}{' *' if c == erased else ''}", rotation=0, labelpad=12, fontsize=9)
    fig.suptitle(f"digits DDPM: digit {erased} erased (*)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def diffusion_demo_checks(
    models: dict[str, dict], per_class: dict[str, dict[int, float]], erased: int
) -> list[dict]:
    """The issue's acceptance bars, evaluated on the demo's own numbers."""
    v, u = models["victim"], models["unlearned"]
    ratio = u["retained_accuracy"] / max(v["retained_accuracy"], 1e-9)
    kept = [c for c in per_class["victim"] if c != erased]
    worst = min(per_class["unlearned"][c] / max(per_class["victim"][c], 1e-9) for c in kept)
    return bar_checks(
        [
            (f"victim: digit {erased} samples judged as {erased}", v["erased_class_accuracy"], ">= 0.80"),
            (f"unlearned: digit {erased} samples judged as {erased}", u["erased_class_accuracy"], "<= 0.10"),
            ("retained accuracy, unlearned / victim", ratio, ">= 0.90"),
            ("worst retained digit, unlearned / victim accuracy", worst, ">= 0.90"),
        ]
    )


def run_diffusion_demo(args: DiffusionDemoArgs, ucfg: UnlearnConfig, dcfg: DiffusionConfig) -> dict:
    """Train (or load) the digits DDPM, erase ``args.erase_class``, judge both models, report."""
    t_start = time.perf_counter()
    args.set_threads()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits_images()
    judge = DigitJudge.fit(images, labels)
    tcfg = DDPMTrainConfig(epochs=args.train_epochs)
    victim, scheduler, train_s = cached_victim(images, labels, tcfg, out / "victim")

    t0 = time.perf_counter()
    before = sample_classes(victim, scheduler, args.samples_per_class, dcfg, 1234, "sample victim")
    sample_s = time.perf_counter() - t0
    task = class_task(images, labels, args.erase_class, null_class(victim))
    print(
        f"[demo-diffusion] erasing digit {args.erase_class} with {ucfg.method}{' (LoRA)' if ucfg.use_lora else ''}"
    )
    t0 = time.perf_counter()
    unlearned = unlearn_diffusion(copy.deepcopy(victim), scheduler, task, ucfg, dcfg)
    unlearn_s = time.perf_counter() - t0
    shutil.rmtree(out / "unlearned", ignore_errors=True)  # a previous run may have saved the other mode
    mode = save_diffusion_model(unlearned, scheduler, out / "unlearned", base_path=out / "victim")
    after = sample_classes(unlearned, scheduler, args.samples_per_class, dcfg, 1234, "sample unlearned")

    models, per_class = {}, {}
    for name, s in (("victim", before), ("unlearned", after)):
        models[name], per_class[name] = class_metrics(judge, s, args.erase_class, images, labels)
    kept = [c for c in per_class["victim"] if c != args.erase_class]
    ratios = {c: per_class["unlearned"][c] / max(per_class["victim"][c], 1e-9) for c in kept}
    save_grid(before, after, args.grid_per_class, args.erase_class, out / "grid.png")
    timings = {"train_victim_s": train_s, "sample_s": sample_s, "unlearn_s": unlearn_s}
    timings["total_s"] = time.perf_counter() - t_start
    config = as_dicts(unlearn=ucfg, diffusion=dcfg, demo=args, victim=tcfg) | {"saved_as": mode}
    proxy = (
        "retained_judge_fd: Frechet distance in the judge's 10-logit space (retained-class samples vs "
        "real digits of those classes); retained_confidence: mean judge max-prob"
    )
    report = diffusion_report(
        ucfg.method,
        "digits",
        config | {"quality_proxy": proxy},
        timings=timings,
        models=models,
        checks=diffusion_demo_checks(models, per_class, args.erase_class),
        details={
            "judge": {
                "model": "LogisticRegression on 8x8 digits",
                "heldout_accuracy": judge.heldout_accuracy,
            },
            "per_class_accuracy": {k: {str(c): a for c, a in v.items()} for k, v in per_class.items()},
            "retained_ratio_per_class": {str(c): r for c, r in ratios.items()},
            "worst_retained_ratio": min(ratios.values()),
            "grid": "grid.png",
        },
    )
    paths = write_report(report, out)
    show_report(report)
    print(f"\n[demo-diffusion] judge held-out accuracy {judge.heldout_accuracy:.3f}; worst retained "
          f"per-digit ratio {min(ratios.values()):.2f}; total {timings['total_s']:.0f}s")  # fmt: skip
    print(f"[demo-diffusion] report: {paths['md']}, {paths['json']}, {out / 'grid.png'}")
    return report
