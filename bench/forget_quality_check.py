"""Does forget quality separate memorised from never-seen on the demo corpus?

    python bench/forget_quality_check.py        (after `make demo`, which caches victim and oracle)

Trains a second retain-only oracle with another seed (cached in runs/demo/oracle_seed1) and prints
the KS p-value of forget-set truth ratios: victim vs oracle must be < 0.05 (memorised is
distinguishable), oracle vs the second oracle >= 0.05 (two retrains are not). Also the MIA AUCs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

import genforget
from genforget.data.pii import build_pii_corpus
from genforget.evaluation.harness import Suite, run_suite
from genforget.lm.victim import VICTIM_PRESETS, train_victim


def main() -> None:
    torch.set_num_threads(1)
    run = Path("runs/demo")
    if not (run / "oracle" / "config.json").is_file():
        raise SystemExit("run `make demo` first: it trains and caches runs/demo/victim and runs/demo/oracle")
    victim, tok = genforget.load_model(run / "victim")
    oracle, _ = genforget.load_model(run / "oracle")
    second = run / "oracle_seed1"
    corpus = build_pii_corpus()
    if (second / "config.json").is_file():
        oracle2, _ = genforget.load_model(second)
    else:
        cfg = dataclasses.replace(VICTIM_PRESETS["demo"], seed=1)
        oracle2, _, _ = train_victim(
            corpus, ("retain",), cfg, tokenizer=tok, output_dir=second, desc="oracle seed 1"
        )
    models = {"victim": (victim, tok), "oracle_seed1": (oracle2, tok), "oracle": (oracle, tok)}
    report = run_suite(models, Suite(name="fq_check", any_k=0, audits=[]), progress=False)
    print("| model vs oracle | forget quality (KS p) | MIA min-k AUC | PrivLeak |")
    print("|---|---|---|---|")
    for name in ("victim", "oracle_seed1"):
        m = report["models"][name]
        print(f"| {name} | {m['forget_quality']:.3g} | {m['mia_min_k_auc']:.3f} | {m['privleak']:.1f} |")
    print(f"| oracle (reference) | — | {report['models']['oracle']['mia_min_k_auc']:.3f} | — |")
    Path("runs/bench").mkdir(parents=True, exist_ok=True)
    Path("runs/bench/forget_quality_check.json").write_text(json.dumps(report["models"], indent=2))


if __name__ == "__main__":
    main()
