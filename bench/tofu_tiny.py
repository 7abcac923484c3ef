"""TOFU at tiny scale: a table shaped like the TOFU paper's, on a 2-core CPU.

    python bench/tofu_tiny.py [--data builtin | --data /path/to/tofu | --data locuslab/TOFU] [--forget forget05]

A tiny Llama is trained on the QA pairs of ``retain_perturbed`` (400 pairs, 21 authors) plus the
forget split (the victim), and on ``retain_perturbed`` alone (the oracle: a retrain without the
forget authors). Each registered method then unlearns the forget split from the victim, and every
model is scored by the eval harness: forget quality (KS test of truth ratios against the oracle),
model utility (harmonic mean over retain, real authors and world facts), forget ROUGE-L recall,
MIA min-k % AUC against the matching holdout split, and time. Writes runs/bench/tofu_tiny.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

import genforget
from genforget.data.loaders import load_tofu
from genforget.evaluation.harness import Suite, build_suite_data, run_suite
from genforget.lm.victim import VictimConfig, build_model, train_causal_lm, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
# One setting per method, the same step budget for all; grad_ascent has no retain term.
METHODS = {
    "grad_ascent": {"learning_rate": 1e-4, "max_steps": 30},
    "grad_diff": {"learning_rate": 1e-4, "max_steps": 30},
    "npo": {"learning_rate": 5e-4, "max_steps": 30, "beta": 0.1},
    "simnpo": {"learning_rate": 5e-4, "max_steps": 30, "beta": 2.5, "gamma": 0.0},
}


def qa_text(r: dict) -> str:
    return f"{r['question']} {r['answer']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="builtin", help="builtin (packaged copy), a dir of JSONL, or a hub id")
    ap.add_argument("--forget", default="forget05", choices=["forget01", "forget05", "forget10"])
    ap.add_argument("--steps", type=int, default=800, help="victim/oracle training steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench/tofu_tiny.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    forget, retain = load_tofu(args.data, args.forget), load_tofu(args.data, "retain_perturbed")
    cfg = VictimConfig(
        hidden_size=128, intermediate_size=256, vocab_size=2048, max_steps=args.steps, batch_size=32
    )
    tok = train_tokenizer([qa_text(r) for r in load_tofu(args.data, "full")], cfg.vocab_size)

    def train(rows: list[dict], desc: str) -> tuple[torch.nn.Module, float]:
        t0 = time.perf_counter()
        model = build_model(cfg, tok)
        train_causal_lm(model, tok, lambda rng: [qa_text(r) for r in rows], cfg, desc=desc)
        return model, time.perf_counter() - t0

    victim, victim_s = train(retain + forget, "victim")
    oracle, oracle_s = train(retain, "oracle")
    models, timings = (
        {"victim": (victim, tok), "oracle": (oracle, tok)},
        {"victim": victim_s, "oracle": oracle_s},
    )
    forget_qa = [{"question": r["question"], "answer": r["answer"]} for r in forget]
    retain_qa = [{"question": r["question"], "answer": r["answer"]} for r in retain]
    for method, kw in METHODS.items():
        t0 = time.perf_counter()
        out = genforget.unlearn(
            copy.deepcopy(victim), tok, forget_qa, retain_qa, method=method, calibration=False, **kw
        )
        timings[method] = time.perf_counter() - t0
        models[method] = (out, tok)
    rows = []
    n_params = sum(p.numel() for p in victim.parameters()) / 1e6
    reports = {}
    for scoring in ("genforget", "open_unlearning"):
        suite = Suite(
            name="tofu_tiny",
            data=f"tofu:{args.data}",
            forget_split=args.forget,
            any_k=0,
            audits=[],
            scoring=scoring,
        )
        report = run_suite(models, suite, data=build_suite_data(suite), method="all", progress=False)
        reports[scoring] = report
        print(
            f"\nTOFU {args.forget}, tiny Llama ({n_params:.2f}M params), {args.threads} CPU thread(s), "
            f"scoring {report['details']['scoring']}; model utility from "
            f"{len(report['details']['model_utility_terms'])} terms\n"
        )
        print(
            "| model | forget quality | model utility | forget ROUGE-L | MIA min-k AUC | MIA zlib AUC | time (s) |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, m in report["models"].items():
            fq = m.get("forget_quality")
            row = {
                "scoring": scoring,
                "model": name,
                "forget_quality": fq,
                "model_utility": m["model_utility"],
                "forget_rouge_l_recall": m["forget_rouge_l_recall"],
                "mia_min_k_auc": m["mia_min_k_auc"],
                "mia_zlib_auc": m["mia_zlib_auc"],
                "time_s": timings[name],
            }
            rows.append(row)
            fq_s = "—" if fq is None else f"{fq:.2e}"
            print(
                f"| {name} | {fq_s} | {m['model_utility']:.4f} | {m['forget_rouge_l_recall']:.3f} | "
                f"{m['mia_min_k_auc']:.3f} | {m['mia_zlib_auc']:.3f} | {timings[name]:.1f} |"
            )
    report = reports
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "report": report, "config": vars(args)}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
