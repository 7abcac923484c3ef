"""Concept erasure on tiny Stable Diffusion pipelines: the shipped concept config over concept sets,
seeds and judges, so its figures are not tuned to one case.

    python bench/diffusion_concepts.py [--config recipes/configs/esd_concept.yaml] \
        [--sets A,B] [--seeds 0,1] [--keep others|builtin] [--set method=esd ...]

For each concept set (A: red square, blue circle, green triangle, yellow cross; B: magenta diamond,
cyan ring, orange square, white triangle; C: red/blue x square/circle, where the erased caption
shares a word with every kept one) and seed, a victim is trained (cached under
``runs/bench/concepts/``), its first caption erased with the config, and the result judged by two
judges fitted on the victim's generations (a CNN and a linear model). Writes ``diffusion_concepts.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from genforget.cli.args import parse_config
from genforget.config import UnlearnConfig
from genforget.diffusion.concept_judge import fit_judge_on_samples
from genforget.diffusion.concept_suite import ERASED_MAX, KEPT_MIN_RATIO, erasure_table, generate
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.erase import erase_concept
from genforget.diffusion.pipeline import load_pipeline
from genforget.diffusion.shapes import CONCEPTS_A, CONCEPTS_B
from genforget.diffusion.t2i_victim import ShapesPipelineConfig, shapes_victim

SETS = {
    "A": list(CONCEPTS_A),
    "B": list(CONCEPTS_B),
    "C": ["a photo of a red square", "a photo of a red circle", "a photo of a blue square",
          "a photo of a blue circle"],
}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="recipes/configs/esd_concept.yaml")
    p.add_argument("--sets", default="A,B")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--keep", default="others", choices=["others", "builtin"])
    p.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    p.add_argument("--train_steps", type=int, default=1000)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    overrides = [x for kv in a.set for x in ("--" + kv.split("=", 1)[0], kv.split("=", 1)[1])]
    ucfg, dcfg = parse_config((UnlearnConfig, DiffusionConfig), ["--config", a.config, *overrides])
    fields = {k: v for k, v in dataclasses.asdict(ucfg).items() if k != "method"}
    rows = []
    for set_name in a.sets.split(","):
        concepts = SETS[set_name]
        erased, kept = concepts[0], concepts[1:]
        for seed in (int(s) for s in a.seeds.split(",")):
            cfg = ShapesPipelineConfig(concepts, train_steps=a.train_steps, seed=seed)
            victim, _ = shapes_victim(cfg, Path(a.out) / "concepts" / f"{set_name}-s{seed}")
            fit = generate(victim, concepts, 48, dcfg, seed=1)
            t0 = time.perf_counter()
            result = erase_concept(load_pipeline(victim.source), erased, ucfg.method,
                                   keep_prompts=kept if a.keep == "others" else None, diffusion_config=dcfg,
                                   **{**fields, "seed": seed})  # fmt: skip
            seconds = time.perf_counter() - t0
            samples = {"victim": generate(victim, concepts, a.samples, dcfg, seed=1234),
                       "unlearned": generate(result.model, concepts, a.samples, dcfg, seed=1234)}  # fmt: skip
            for kind in ("cnn", "linear"):
                judge = fit_judge_on_samples(fit, kind, seed=seed)
                models, per = erasure_table(judge, samples, erased)
                v, u = models["victim"], models["unlearned"]
                ok = u["erased_concept_accuracy"] <= ERASED_MAX and u["worst_kept_ratio"] >= KEPT_MIN_RATIO
                rows.append({"set": set_name, "seed": seed, "judge": kind, "judge_heldout": judge.heldout_accuracy,
                             "victim_erased": v["erased_concept_accuracy"], "victim_kept": v["kept_concept_accuracy"],
                             "erased": u["erased_concept_accuracy"], "kept": u["kept_concept_accuracy"],
                             "worst_kept_ratio": u["worst_kept_ratio"], "per_caption": per, "pass": ok,
                             "unlearn_s": seconds})  # fmt: skip
                print(f"done set {set_name} seed {seed} judge {kind}: erased {u['erased_concept_accuracy']:.2f} "
                      f"worst kept ratio {u['worst_kept_ratio']:.2f}", flush=True)  # fmt: skip
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "diffusion_concepts.json").write_text(json.dumps(
        {"config": a.config, "overrides": a.set, "keep": a.keep, "rows": rows}, indent=2))  # fmt: skip
    print(f"\nconfig {a.config} {' '.join(a.set)} (method {ucfg.method}{', LoRA' if ucfg.use_lora else ''}), "
          f"keep prompts: {a.keep}")  # fmt: skip
    print(
        "\n| set | seed | judge (held-out acc.) | victim: erased / kept | unlearned: erased | kept | "
        "worst kept / victim | pass | unlearn s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['seed']} | {r['judge']} ({r['judge_heldout']:.2f}) | {r['victim_erased']:.2f} / "
              f"{r['victim_kept']:.2f} | {r['erased']:.2f} | {r['kept']:.2f} | {r['worst_kept_ratio']:.2f} | "
              f"{'yes' if r['pass'] else 'NO'} | {r['unlearn_s']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
