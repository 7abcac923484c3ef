"""Quality vs cost: every registered LM method on the demo corpus, next to the oracle retrain.

    python bench/quality_cost.py [--config recipes/configs/demo.yaml] [--out runs/bench]

Victim and oracle are the demo's (trained once and cached in the demo's output dir). Each method
starts from the demo's unlearning config (calibrated stop included), with the per-method
overrides below, and is timed from the call to the returned model; the oracle's time is its
training time. Writes ``quality_cost.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from genforget.config import UnlearnConfig, make_config, settings_for
from genforget.demos.pii import demo_models, demo_suite, split_demo_config
from genforget.evaluation.harness import run_suite
from genforget.lm.trainer import unlearn_lm
from genforget.methods.registry import METHODS

# SimNPO's length-normalised margin lives on another scale than NPO's log-ratio (its paper's beta
# is 2.5); the other methods run with the demo's settings as they are.
OVERRIDES: dict[str, dict] = {"simnpo": {"beta": 2.5}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="recipes/configs/demo.yaml")
    ap.add_argument("--out", default="runs/bench")
    args = ap.parse_args()
    demo, ucfg = split_demo_config(args.config)
    dm = demo_models(demo)
    tok, corpus = dm.tokenizer, dm.corpus
    models = {"victim": (dm.victim, tok), "oracle": (dm.oracle, tok)}
    seconds = {"victim": dm.victim_s, "oracle": dm.oracle_s}
    stopped = {}
    forget, retain = corpus.unlearn_examples("forget"), corpus.full_text_examples("retain")
    calibration = corpus.calibration_examples() if demo.calibrated_stop else None
    for method, cls in METHODS.items():
        if "lm" not in cls.modalities:
            continue
        cfg = make_config(
            UnlearnConfig, settings_for(method, {**ucfg, "method": method, **OVERRIDES.get(method, {})})
        )
        history: list[dict] = []
        t0 = time.perf_counter()
        out = unlearn_lm(
            copy.deepcopy(dm.victim), tok, forget, retain, cfg, calibration=calibration, history=history
        )
        seconds[method] = time.perf_counter() - t0
        stopped[method] = len(history)
        models[method] = (out, tok)
    torch.set_num_threads(demo.num_threads)
    suite = demo_suite(demo, "bench")
    report = run_suite(models, suite, method="all", progress=False)
    rows = []
    oracle_auc = report["models"]["oracle"]["mia_min_k_auc"]
    gaps = report.get("relearn_speed", {}).get("gap_to_oracle", {})
    for name, m in report["models"].items():
        rows.append(
            {
                "model": name,
                "steps": stopped.get(name),
                "forget_pii_extraction": m["forget_pii_extraction"],
                "forget_verbatim_extraction": m["forget_verbatim_extraction"],
                "retain_pii_extraction": m["retain_pii_extraction"],
                "mia_min_k_auc": m["mia_min_k_auc"],
                "mia_gap_to_oracle": abs(m["mia_min_k_auc"] - oracle_auc),
                "forget_quality": m.get("forget_quality"),
                "model_utility": m["model_utility"],
                "time_s": seconds[name],
                "time_vs_retrain": seconds[name] / dm.oracle_s,
                "relearn_max_gap": gaps.get(name, {}).get("max_gap"),
                "relearn_gap_area": gaps.get(name, {}).get("area"),
            }
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_cost.json").write_text(json.dumps({"rows": rows, "config": ucfg}, indent=2))
    print(
        f"\nQuality vs cost on the demo corpus ({demo.n_people} people, {demo.forget_frac:.0%} forgotten):\n"
    )
    print(
        "| model | steps | forget PII | forget verbatim | retain PII | MIA min-k AUC (gap to oracle) "
        "| forget quality | model utility | relearn gap to oracle, max (area) | time s | / retrain |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fq = "—" if r["forget_quality"] is None else f"{r['forget_quality']:.1e}"
        rg = (
            "—"
            if r["relearn_max_gap"] is None
            else f"{r['relearn_max_gap']:.2f} ({r['relearn_gap_area']:.2f})"
        )
        print(
            f"| {r['model']} | {r['steps'] or '—'} | {r['forget_pii_extraction']:.3f} | "
            f"{r['forget_verbatim_extraction']:.3f} | {r['retain_pii_extraction']:.3f} | "
            f"{r['mia_min_k_auc']:.3f} ({r['mia_gap_to_oracle']:.3f}) | {fq} | {r['model_utility']:.3f} | {rg} | "
            f"{r['time_s']:.1f} | {r['time_vs_retrain']:.3f} |"
        )


if __name__ == "__main__":
    main()
