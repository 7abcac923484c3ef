"""Every diffusion method on the embedded digits benchmark: erase one digit, judge, print a table.

    python bench/diffusion_methods.py [--victim_dir runs/demo-diffusion/victim] [--max_steps 100]

Reuses the demo's cached victim (trains it when absent, ~3 min on one core). Writes ``diffusion_methods.json`` under ``--out``. Same settings for
every method (the demo's: lr 1e-3, batch 32, retain batch 64, 100 steps), so read it as a
like-for-like check, not each method's best.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from genforget.config import UnlearnConfig, settings_for
from genforget.demos.diffusion import cached_victim, sample_classes
from genforget.diffusion.data import DiffusionConfig, class_task, load_digits_images
from genforget.diffusion.judge import DigitJudge, class_metrics
from genforget.diffusion.models import null_class
from genforget.diffusion.trainer import unlearn_diffusion
from genforget.diffusion.victim import DDPMTrainConfig

RUNS = [
    ("salun", {}),
    ("salun", {"use_lora": True, "learning_rate": 5e-3}),
    ("esd", {}),
    ("grad_diff", {}),
    ("npo", {}),
    ("simnpo", {}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--victim_dir", default="runs/demo-diffusion/victim")
    p.add_argument("--erase_class", type=int, default=0)
    p.add_argument("--max_steps", type=int, default=100)
    p.add_argument("--samples_per_class", type=int, default=50)
    p.add_argument("--out", default="runs/bench")
    a = p.parse_args()
    torch.set_num_threads(1)
    images, labels = load_digits_images()
    judge = DigitJudge.fit(images, labels)
    victim, scheduler, _ = cached_victim(images, labels, DDPMTrainConfig(), Path(a.victim_dir))
    dcfg = DiffusionConfig()
    task = class_task(images, labels, a.erase_class, null_class(victim))
    rows = []
    s = sample_classes(victim, scheduler, a.samples_per_class, dcfg, 1234, "victim")
    rows.append(("victim", class_metrics(judge, s, a.erase_class, images, labels)[0], 0.0))
    for method, kw in RUNS:
        base = dict(
            method=method, learning_rate=1e-3, max_steps=a.max_steps, batch_size=32, retain_batch_size=64
        )
        cfg = UnlearnConfig(**settings_for(method, {**base, **kw}))
        t0 = time.perf_counter()
        model = unlearn_diffusion(copy.deepcopy(victim), scheduler, task, cfg, dcfg)
        seconds = time.perf_counter() - t0
        s = sample_classes(model, scheduler, a.samples_per_class, dcfg, 1234, method)
        name = method + (" (LoRA)" if cfg.use_lora else "")
        rows.append((name, class_metrics(judge, s, a.erase_class, images, labels)[0], seconds))
        print(f"done {name}", flush=True)
    v = rows[0][1]["retained_accuracy"]
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "diffusion_methods.json").write_text(
        json.dumps([{"model": n, "unlearn_s": sec, **m} for n, m, sec in rows], indent=2)
    )
    print(f"\n| model | digit {a.erase_class} judged as it | retained accuracy (ratio to victim) | "
          "retained FD (judge logits) | unlearn s |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, m, sec in rows:
        print(f"| {name} | {m['erased_class_accuracy']:.2f} | {m['retained_accuracy']:.3f} "
              f"({m['retained_accuracy'] / v:.2f}) | {m['retained_judge_fd']:.1f} | {sec:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
