"""The Stable Diffusion concept-erasure demo: a tiny latent SD pipeline, one concept erased, the others kept.

``make demo-diffusion-sd`` (``genforget demo diffusion-sd --config recipes/configs/esd_concept.yaml``)
runs :func:`run_sd_demo`, offline on a CPU:

1. a tiny ``StableDiffusionPipeline`` built from configs (VAE, CLIP text encoder, UNet, Euler) is
   trained on the built-in shapes captions ("a photo of a red square", ...), and the same recipe
   without the erased caption gives the retrain oracle; both cached in ``<output_dir>/victim`` and
   ``<output_dir>/oracle``;
2. the concept is erased with the shipped concept config (the other captions are the prompts to
   keep), saved as diffusers loads it, and *reloaded from disk* for everything that follows;
3. a judge fitted on the victim's own generations scores victim, unlearned and oracle on each
   caption (a second judge of another kind and one fitted on the real training images are
   reported beside it); report.json / report.md / report.png and grid.png (rows: captions; blocks:
   victim, unlearned, oracle; same starting noise in every block).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import torch

from genforget.config import UnlearnConfig
from genforget.demos.checks import as_dicts, diffusion_report, show_report
from genforget.demos.options import SDDemoArgs
from genforget.diffusion.concept_judge import concept_accuracy, fit_judge_on_samples
from genforget.diffusion.concept_suite import (
    erasure_checks,
    erasure_table,
    generate,
    save_image_grid,
    start_noise,
)
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.erase import erase_concept, save_erased
from genforget.diffusion.pipeline import TextToImage, load_pipeline
from genforget.diffusion.pipeline_io import load_unlearned
from genforget.diffusion.shapes import shapes_dataset
from genforget.diffusion.t2i_victim import ShapesPipelineConfig, shapes_victim_and_oracle
from genforget.evaluation.report import write_report


def _log(msg: str) -> None:
    print(f"[demo-diffusion-sd] {msg}", flush=True)


def _reload_check(
    model: TextToImage, ours: dict[str, torch.Tensor], prompts: list[str], dcfg, n: int
) -> float:
    """Max |pipe(prompt) - genforget's sample| over the first ``n`` images of each prompt, from the
    same starting noise: the saved pipeline's own ``__call__`` gives what was measured."""
    k = len(next(iter(ours.values())))
    noise = start_noise(model, len(ours) * k, 1234)
    worst = 0.0
    for p in prompts:
        i = list(ours).index(p) * k
        imgs = model.pipe([p] * n, num_inference_steps=dcfg.sample_steps, guidance_scale=dcfg.guidance_scale,
                          latents=noise[i : i + n].clone(), output_type="pt").images  # fmt: skip
        worst = max(worst, float((imgs.clamp(0, 1) - (ours[p][:n] + 1) / 2).abs().max()))
    return worst


def run_sd_demo(args: SDDemoArgs, ucfg: UnlearnConfig, dcfg: DiffusionConfig) -> dict:
    """Train (or load) victim and oracle, erase ``args.erase``, reload, judge, report."""
    t_start = time.perf_counter()
    args.set_threads()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    scfg = ShapesPipelineConfig(args.concepts, args.images_per_concept, vae_steps=args.vae_steps,
                                train_steps=args.train_steps, seed=args.victim_seed)  # fmt: skip
    victim, oracle, timings = shapes_victim_and_oracle(scfg, args.erase, out, _log)
    if timings["cached"]:
        _log(f"victim and oracle: cached in {out}")
    kept = [p for p in args.concepts if p != args.erase]

    _log(f"erasing one caption with {ucfg.method}{' (LoRA)' if ucfg.use_lora else ''}; keeping {len(kept)}")
    fields = {k: v for k, v in dataclasses.asdict(ucfg).items() if k != "method"}
    t0 = time.perf_counter()
    result = erase_concept(load_pipeline(out / "victim"), args.erase, ucfg.method,
                           keep_prompts=kept if args.keep_others else None, diffusion_config=dcfg, **fields)  # fmt: skip
    timings["unlearn_s"] = time.perf_counter() - t0
    shutil.rmtree(out / "unlearned", ignore_errors=True)
    (out / "unlearned").mkdir()
    mode = save_erased(result, out / "unlearned")
    unlearned = load_unlearned(out / "unlearned")  # from disk, as a user would (base + LoRA, or the pipeline)

    t0 = time.perf_counter()
    fit = generate(victim, args.concepts, args.judge_samples, dcfg, seed=1)
    samples = {name: generate(m, args.concepts, args.eval_samples, dcfg, seed=1234)
               for name, m in (("victim", victim), ("unlearned", unlearned), ("oracle", oracle))}  # fmt: skip
    timings["sample_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    judges = {"cnn_on_generations": fit_judge_on_samples(fit, "cnn"),
              "linear_on_generations": fit_judge_on_samples(fit, "linear")}  # fmt: skip
    real, _ = shapes_dataset(args.concepts, args.judge_samples, seed=args.victim_seed + 99)
    n = args.judge_samples
    judges["cnn_on_real_images"] = fit_judge_on_samples(
        {p: real[i * n : (i + 1) * n] for i, p in enumerate(args.concepts)}
    )
    timings["judge_s"] = time.perf_counter() - t0
    models, per = erasure_table(judges["cnn_on_generations"], samples, args.erase)
    others = {}
    for name in ("linear_on_generations", "cnn_on_real_images"):
        m2, p2 = erasure_table(judges[name], samples, args.erase)
        others[name] = {"models": m2, "per_caption": p2}
    reload_diff = _reload_check(unlearned, samples["unlearned"], [args.erase, kept[0]], dcfg, 2)
    checks = erasure_checks(models)
    for name, o in others.items():
        u = o["models"]["unlearned"]
        checks.append({"name": f"{name} judge: unlearned erased / worst kept ratio",
                       "value": float(u["erased_concept_accuracy"]), "bar": "<= 0.10 and ratio >= 0.90",
                       "ok": bool(u["erased_concept_accuracy"] <= 0.1 and u["worst_kept_ratio"] >= 0.9)})  # fmt: skip
    checks.append({"name": "reloaded pipeline's own call vs measured samples (max abs diff)",
                   "value": reload_diff, "bar": "<= 0.002", "ok": reload_diff <= 2e-3})  # fmt: skip
    same_sched = dict(unlearned.scheduler.config) == dict(victim.scheduler.config)
    checks.append({"name": "saved pipeline samples with the victim's own scheduler", "value": float(same_sched),
                   "bar": "= 1", "ok": same_sched})  # fmt: skip
    save_image_grid({k: samples[k] for k in ("victim", "unlearned", "oracle")}, args.grid_per_concept,
                    out / "grid.png", f"tiny SD: '{args.erase}' erased (*) with {ucfg.method}", args.erase)  # fmt: skip
    timings["total_s"] = time.perf_counter() - t_start
    measure = (
        "share of a caption's generations a judge assigns to that caption; the judge is a small CNN "
        "fitted on the victim's own generations (labelled by caption), no CLIP"
    )
    report = diffusion_report(
        ucfg.method,
        "shapes-concepts",
        as_dicts(unlearn=ucfg, diffusion=dcfg, demo=args, victim=scfg)
        | {"saved_as": mode, "measure": measure},
        timings=timings,
        models=models,
        checks=checks,
        details={
            "judges": {
                k: {"kind": j.kind, "heldout_accuracy": j.heldout_accuracy} for k, j in judges.items()
            },
            "per_caption": per,
            "other_judges": others,
            "real_images_by_judge": concept_accuracy(
                judges["cnn_on_generations"],
                {p: real[i * n : (i + 1) * n] for i, p in enumerate(args.concepts)},
            ),  # fmt: skip
            "grid": "grid.png",
        },
    )
    paths = write_report(report, out)
    show_report(report)
    _log(f"report: {paths['md']}, {paths['json']}, {out / 'grid.png'}; total {timings['total_s']:.0f}s")
    return report
