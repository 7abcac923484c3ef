"""Forgetting that holds: plain NPO next to its remedies (issue 11), on the demo.

    python bench/robust.py [--size demo|large] [--only SUBSTRING ...] [--out runs/bench/robust]

Each row unlearns the demo's victim (trained once and cached by ``make demo``) and is then
attacked: fine-tuning on the forget set's texts for 0/5/10/20/40 steps (the relearn-speed audit,
next to the oracle retrain's curve) and a 4-bit NF4 load. Rows: the demo's NPO config, each
remedy on top of it (``sam_rho``, ``quant_aware_weight``, ``undo_alpha``) and the shipped
recipe configs (``robust_pii.yaml``, ``npo_lora_pii.yaml``, ``robust_lora_pii.yaml``) run as the
recipe would run them. Prints a table and its Pareto view (retain kept vs largest relearn gap vs
cost, ``bench/_frontier.py``); writes ``robust.json`` (rows and frontier), ``robust_frontier.png``
and the demo-style ``report.{json,md}`` with ``relearn_speed.png`` (every curve) into ``--out``.

``--size large`` runs the same rows on a 4.2M-parameter victim and retrain (9x the demo's, the
``large`` preset of :data:`genforget.lm.victim.VICTIM_PRESETS`) trained once on the same corpus
and cached in ``runs/demo-large`` (their own folder; the cache key holds the model config, so
the two sizes never load each other's models); the default ``--out`` is then
``runs/bench/robust-large``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import yaml

from genforget.config import UnlearnConfig, make_config, method_field_owners, settings_for
from genforget.data.loaders import load_data_spec
from genforget.demos.options import DemoArgs
from genforget.demos.pii import demo_models, demo_suite, split_demo_config
from genforget.evaluation.harness import run_suite
from genforget.evaluation.report import write_report
from genforget.lm.trainer import unlearn_lm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _frontier import pareto, plot, print_pareto  # noqa: E402

DEMO = "recipes/configs/demo.yaml"
# (row name, config file, overrides). Demo-config rows run with the demo's calibrated stop;
# recipe configs with calibration only where they name calibration_data, as the recipe does.
SALIENT = {"undo_alpha": 1.0, "undo_nll_weight": 1.0}
VICTIM = {"undo_teacher": "victim"}
LAYERS = {"undo_mask_ratio": 0.3, "undo_mask_unit": "tensor"}
ROWS: list[tuple[str, str, dict]] = [
    ("npo (demo)", DEMO, {}),
    ("npo + sam rho=0.2", DEMO, {"sam_rho": 0.2}),
    ("npo + nf4-aware", DEMO, {"quant_aware_weight": 1.0}),
    ("npo + undo a=0.65 (all weights)", DEMO, {"undo_alpha": 0.65}),
    ("npo + undo salient 10%", DEMO, {**SALIENT, "undo_mask_ratio": 0.1}),
    ("npo + undo salient 20%", DEMO, {**SALIENT, "undo_mask_ratio": 0.2}),
    ("robust_pii.yaml (undo salient 30%)", "recipes/configs/robust_pii.yaml", {}),
    # Issue 22's attempts, measured one at a time on top of the same NPO run.
    ("npo + undo salient 30%, victim teacher", DEMO, {**SALIENT, "undo_mask_ratio": 0.3, **VICTIM}),
    ("npo + undo salient 20%, victim teacher", DEMO, {**SALIENT, "undo_mask_ratio": 0.2, **VICTIM}),
    ("npo + undo layers 30%, victim teacher", DEMO, {**SALIENT, **LAYERS, **VICTIM}),
    # The victim teacher kept no more than the unlearned one (0.57x vs 0.55x): is it the budget?
    (
        "npo + undo salient 30%, victim teacher, 300 steps",
        DEMO,
        {**SALIENT, "undo_mask_ratio": 0.3, **VICTIM, "undo_steps": 300},
    ),
    (
        "npo + undo salient 20%, victim teacher, 300 steps",
        DEMO,
        {**SALIENT, "undo_mask_ratio": 0.2, **VICTIM, "undo_steps": 300},
    ),
    ("npo + relearn-aware k=5", DEMO, {"relearn_aware_steps": 5}),
    # k=5 at weight 1 tripped the divergence guard at step 10 (retain perplexity x15), unforgotten.
    ("npo + relearn-aware k=5, weight 0.25", DEMO, {"relearn_aware_steps": 5, "relearn_aware_weight": 0.25}),
    ("npo_lora_pii.yaml", "recipes/configs/npo_lora_pii.yaml", {}),
    ("robust_lora_pii.yaml", "recipes/configs/robust_lora_pii.yaml", {}),
    # The recipe trips the divergence guard (step 20); it was tuned before rank-stabilised LoRA
    # became the default, but without it the guard trips too (step 35): rsLoRA is not the cause.
    ("robust_lora_pii.yaml, use_rslora false", "recipes/configs/robust_lora_pii.yaml", {"use_rslora": False}),
    # The demo's lr 5e-4 kept 0.12x on the 4.2M victim (--size large): the same rows at 1e-4.
    ("npo lr 1e-4", DEMO, {"learning_rate": 1e-4}),
    ("npo lr 1e-4 + undo salient 30%", DEMO, {"learning_rate": 1e-4, **SALIENT, "undo_mask_ratio": 0.3}),
]
# --size: (victim preset, training steps (0 = the preset's), cache folder, default --out).
SIZES = {
    "demo": ("demo", None, None, "runs/bench/robust"),
    "large": ("large", 0, "runs/demo-large", "runs/bench/robust-large"),
}
# The shared fields and every method's own (beta is NPOConfig's): reading only the shared ones
# dropped a recipe's beta: 0.02 for the default, and the LoRA recipes then did not forget.
UCFG_KEYS = set(UnlearnConfig.__dataclass_fields__) | set(method_field_owners())
ADV = ("rephrased", "partial", "hint")  # the probe families (docs/evidence.md)


def _row_setup(path: str, overrides: dict, demo_ucfg: dict, demo_calibrated: bool) -> tuple[dict, dict]:
    """``(UnlearnConfig values, data specs)`` of a row."""
    if path == DEMO:
        data = {"forget_data": "pii:forget", "retain_data": "pii:retain"}
        if demo_calibrated:
            data["calibration_data"] = "pii:calibration"
        return {**demo_ucfg, **overrides}, data
    raw = yaml.safe_load(Path(path).read_text())
    data = {k: raw[k] for k in ("forget_data", "retain_data", "calibration_data") if raw.get(k)}
    return {**{k: v for k, v in raw.items() if k in UCFG_KEYS}, **overrides}, data


def sized_demo(demo: DemoArgs, size: str) -> DemoArgs:
    """The demo's settings with the victim of ``size`` (``demo`` leaves them as they are)."""
    preset, steps, cache, _ = SIZES[size]
    if steps is None:
        return demo
    return dataclasses.replace(demo, victim_preset=preset, victim_steps=steps, output_dir=cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=[], help="rows whose name contains any of these")
    ap.add_argument("--size", choices=sorted(SIZES), default="demo", help="victim size (default: the demo's)")
    ap.add_argument("--out", default="", help="output folder (default: runs/bench/robust[-large])")
    args = ap.parse_args()
    demo, demo_ucfg = split_demo_config(DEMO)
    demo = sized_demo(demo, args.size)
    args.out = args.out or SIZES[args.size][3]
    dm = demo_models(demo)
    tok = dm.tokenizer
    n_params = sum(p.numel() for p in dm.victim.parameters())
    models = {"victim": (dm.victim, tok), "oracle": (dm.oracle, tok)}
    info: dict[str, dict] = {}
    for name, path, overrides in ROWS:
        if args.only and not any(s in name for s in args.only):
            continue
        values, data = _row_setup(path, overrides, demo_ucfg, demo.calibrated_stop)
        cfg = make_config(UnlearnConfig, settings_for(values.get("method", "npo"), values))
        forget, retain = load_data_spec(data["forget_data"]), load_data_spec(data["retain_data"])
        calib = load_data_spec(data["calibration_data"]) if "calibration_data" in data else None
        history: list[dict] = []
        t0 = time.perf_counter()
        out = unlearn_lm(
            copy.deepcopy(dm.victim), tok, forget, retain, cfg, calibration=calib, history=history
        )
        seconds = time.perf_counter() - t0
        steps = max((r["step"] + 1 for r in history if "loss" in r), default=0)
        info[name] = {"seconds": seconds, "steps": steps, "config": values}
        models[name] = (out, tok)
        print(f"[robust] {name}: {steps} steps, {seconds:.1f}s")
    torch.set_num_threads(demo.num_threads)
    suite = demo_suite(demo, "robust")
    suite.audits = ["relearn_speed", "quant4"]
    report = run_suite(models, suite, method="remedies", progress=False)
    speed = report["relearn_speed"]
    victim = report["models"]["victim"]
    rows = []
    for name, m in report["models"].items():
        gap = speed["gap_to_oracle"].get(name, {})
        q4 = report["audits"].get(name, {}).get("quant4", {})
        secs = info.get(name, {}).get("seconds", dm.victim_s if name == "victim" else dm.oracle_s)
        rows.append(
            {
                "model": name,
                "steps": info.get(name, {}).get("steps"),
                "forget_pii_extraction": m["forget_pii_extraction"],
                "retain_pii_kept": m["retain_pii_extraction"] / max(victim["retain_pii_extraction"], 1e-9),
                "model_utility": m["model_utility"],
                "forget_adversarial": {f: m.get(f"forget_adversarial_{f}") for f in ADV},
                "relearn_curve": speed["curves"][name],
                "relearn_max_gap": gap.get("max_gap"),
                "relearn_gap_area": gap.get("area"),
                "quant4_forget_pii_extraction": q4.get("forget_pii_extraction"),
                "quant4_recovered_share": q4.get("recovered_share"),
                "time_s": secs,
                "time_vs_retrain": secs / dm.oracle_s,
            }
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_report(report, out)
    points = pareto(rows)
    plot(
        points, out / "robust_frontier.png", f"Forgetting that holds: {n_params / 1e3:.0f}k-parameter victim"
    )
    (out / "robust.json").write_text(
        json.dumps({"rows": rows, "budgets": speed["budgets"], "configs": info, "frontier": points}, indent=2)
    )
    budgets = "/".join(str(b) for b in speed["budgets"])
    print(
        f"\nForgetting that holds, {n_params / 1e3:.0f}k-parameter victim (relearn: forget PII extraction after {budgets} steps):\n"
    )
    print(
        "| model | steps | forget PII | retain PII kept | utility | relearn curve | max gap to oracle "
        "(area) | 4-bit forget PII (recovered) | adversarial rephrased/partial/hint | time s | / retrain |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        curve = " / ".join(f"{c:.2f}" for c in r["relearn_curve"])
        gap = (
            "—"
            if r["relearn_max_gap"] is None
            else f"{r['relearn_max_gap']:.2f} ({r['relearn_gap_area']:.2f})"
        )
        q = r["quant4_forget_pii_extraction"]
        q4 = "—" if q is None else f"{q:.2f} ({r['quant4_recovered_share'] or 0:.2f})"
        adv = " / ".join("—" if v is None else f"{v:.2f}" for v in r["forget_adversarial"].values())
        print(
            f"| {r['model']} | {r['steps'] or '—'} | {r['forget_pii_extraction']:.2f} | "
            f"{r['retain_pii_kept']:.2f}x | {r['model_utility']:.3f} | {curve} | {gap} | {q4} | {adv} | "
            f"{r['time_s']:.1f} | {r['time_vs_retrain']:.2f} |"
        )
    print(
        f"\nPareto view (kept up, relearn gap down, cost down; rows that forgot, and the retrain); {out / 'robust_frontier.png'}:\n"
    )
    print_pareto(points)
    left = [r["model"] for r in rows if r["model"] not in {p["model"] for p in points}]
    if left:
        print(f"\nNot on the chart (forget PII extraction > 0.10: did not forget): {', '.join(left)}")
    if not any(r["meets_bars"] and r["model"] != "oracle" for r in points):
        print("\nNo unlearning config meets all three bars (kept >= 0.90x, gap <= 0.10, cost <= 0.35x).")


if __name__ == "__main__":
    main()
