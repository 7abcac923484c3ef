"""SISA over LoRA shards on the demo corpus: what an exact deletion costs, and what sharding costs.

    python bench/sisa.py [--quick] [--out runs/bench]

The frozen base is a tiny Llama pretrained on *other* fictitious people (same templates, other
names and values; cached in ``<out>/sisa/base``), so the shard adapters learn the corpus's people
and nothing else. For S in {1, 2, 4, 8} and R in {1, 4} (a short training schedule: time ratios
do not need a memorising model): train the ensemble (= the cost of a full retrain), then time
single-person deletion requests and one request deleting every remaining forget person and
passage. Quality (S in {1, 4}, R = 1, a longer schedule): forget/retain PII extraction,
perplexity and MIA AUC of the shard mixture and of the merged adapter, before and after deleting
the forget split; S = 1 after the deletion is the single-model exact retrain (the oracle).
``--quick`` is a small-corpus smoke run. Prints two tables and writes ``sisa.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from pathlib import Path

import torch

import genforget
from genforget import sisa
from genforget.data.pii import build_pii_corpus
from genforget.evaluation.split import corpus_split
from genforget.lm.victim import VICTIM_PRESETS, VictimConfig, train_tokenizer, train_victim

# Timing and quality use different schedules: deletion/retrain time ratios do not depend on how
# well the adapters memorise, so the S x R timing grid runs a short schedule, and only the
# quality runs (S in quality_shards, R = 1) pay for one that memorises.
FULL = {
    "corpus": {"n_people": 200, "n_passages": 50},
    "base": VictimConfig(max_steps=400),
    "grid": [(s, r) for r in (1, 4) for s in (1, 2, 4, 8)],
    "quality_shards": (1, 4),
    "single_requests": 2,
    "timing": {"epochs": 1, "learning_rate": 1e-2, "batch_size": 16, "lora_r": 16, "lora_alpha": 32},
    "quality": {"epochs": 8, "learning_rate": 1e-2, "batch_size": 16, "lora_r": 16, "lora_alpha": 32},
}
QUICK = {
    "corpus": {"n_people": 30, "n_passages": 6},
    "base": VICTIM_PRESETS["small"],
    "grid": [(1, 1), (4, 1), (4, 2)],
    "quality_shards": (1, 4),
    "single_requests": 2,
    "timing": {"epochs": 2, "learning_rate": 1e-2, "batch_size": 16, "lora_r": 8, "lora_alpha": 16},
    "quality": {"epochs": 10, "learning_rate": 1e-2, "batch_size": 16, "lora_r": 8, "lora_alpha": 16},
}
KEYS = {
    "forget_pii_extraction": "forget PII",
    "retain_pii_extraction": "retain PII",
    "forget_verbatim_extraction": "forget verb.",
    "retain_perplexity": "retain ppl",
    "general_perplexity": "holdout ppl",
    "mia_min_k_auc": "MIA min-k AUC",
}


def make_base(corpus, plan: dict, out: Path):
    """Tokenizer on this corpus + the other-people corpus; base trained on the other people."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out), 0.0
    other = build_pii_corpus(**plan["corpus"], seed=1000)
    texts = [p.bio()["text"] for c in (corpus, other) for p in c.people]
    texts += [t.text for c in (corpus, other) for t in c.passages]
    tok = train_tokenizer(texts, plan["base"].vocab_size)
    model, tok, seconds = train_victim(other, config=plan["base"], tokenizer=tok, output_dir=out, desc="base")
    return model, tok, seconds


def quality(model, tok, corpus) -> dict:
    res = genforget.evaluate(
        model,
        tok,
        corpus_split(corpus, "forget"),
        corpus_split(corpus, "retain"),
        holdout=corpus.full_text_examples("holdout"),
    )
    return {k: res[k] for k in KEYS if k in res}


def run_one(
    base, tok, corpus, records, forget_ids, s: int, r: int, plan: dict, root: Path, evaluate: bool
) -> dict:
    """Train S x R, time single-person requests and the rest of the forget split; with
    ``evaluate``, the quality schedule and metrics before/after."""
    out = root / (f"s{s}-r{r}" + ("-q" if evaluate else ""))
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    ens = sisa.train(
        copy.deepcopy(base), tok, records, s, r, out, **plan["quality" if evaluate else "timing"]
    )
    row = {
        "S": s,
        "R": r,
        "schedule": "quality" if evaluate else "timing",
        "train_s": time.perf_counter() - t0,
        "train_steps": ens.full_train_steps(),
    }
    q = {}
    if evaluate:
        q["mixture_before"] = quality(ens.model("mixture"), tok, corpus)
        if s > 1:
            q["merged_before"] = quality(ens.model("merged"), tok, corpus)
    singles = [ens.delete([i]) for i in forget_ids[: plan["single_requests"]]]
    row["single_delete_s"] = sum(x["seconds"] for x in singles) / len(singles)
    row["single_delete_steps"] = sum(x["steps"] for x in singles) / len(singles)
    rest = ens.delete(forget_ids[plan["single_requests"] :])
    row.update(forget_delete_s=rest["seconds"], forget_delete_steps=rest["steps"])
    row["forget_shards_touched"] = len(rest["shards_touched"])
    row["single_vs_retrain"] = row["single_delete_s"] / row["train_s"]
    # Steps are what the time is made of, without the machine's load: the steady ratio.
    row["single_vs_retrain_steps"] = row["single_delete_steps"] / row["train_steps"]
    if evaluate:
        q["mixture_after"] = quality(ens.model("mixture"), tok, corpus)
        if s > 1:
            q["merged_after"] = quality(ens.model("merged"), tok, corpus)
        row["quality"] = q
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # keep the bench dir small
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument(
        "--quick", action="store_true", help="small corpus and grid: a smoke run of a minute or two"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quality_epochs", type=float, default=0, help="override the quality schedule's epochs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    plan = copy.deepcopy(QUICK if args.quick else FULL)
    if args.quality_epochs:
        plan["quality"]["epochs"] = args.quality_epochs
    root = Path(args.out) / ("sisa_quick" if args.quick else "sisa")
    corpus = build_pii_corpus(**plan["corpus"])
    base, tok, base_s = make_base(corpus, plan, root / "base")
    records = sisa.corpus_records(corpus)
    forget_ids = [r["id"] for r in sisa.corpus_records(corpus, ("forget",))]
    base_q = quality(base, tok, corpus)
    cases = [(s, r, False) for s, r in plan["grid"]] + [(s, 1, True) for s in plan["quality_shards"]]
    rows = []
    for s, r, evaluate in cases:
        rows.append(run_one(base, tok, corpus, records, forget_ids, s, r, plan, root, evaluate))
        w = rows[-1]
        print(
            f"S={s} R={r} ({w['schedule']}): train {w['train_s']:.1f}s, one person {w['single_delete_s']:.2f}s"
        )

    print(f"\nDeletion cost ({len(records)} records; one request = one person; retrain = training it all)")
    head = f"{'schedule':>8} {'S':>3} {'R':>3} {'retrain s':>10} {'steps':>6} {'1 person s':>11} {'steps':>6}"
    print(head + f" {'x retrain':>10} {'(steps)':>8} {'forget split s':>15} {'shards':>7}")
    for w in rows:
        print(
            f"{w['schedule']:>8} {w['S']:>3} {w['R']:>3} {w['train_s']:>10.1f} {w['train_steps']:>6} "
            f"{w['single_delete_s']:>11.2f} {w['single_delete_steps']:>6.0f} {w['single_vs_retrain']:>10.3f} "
            f"{w['single_vs_retrain_steps']:>8.3f} "
            f"{w['forget_delete_s']:>15.1f} {w['forget_shards_touched']:>7}"
        )
    print(
        "\nQuality (R = 1); 'after' = the forget split deleted; S = 1 after = the exact single-model retrain"
    )
    print(f"{'model':<24}" + "".join(f"{v:>14}" for v in KEYS.values()))
    table = [("base (other people)", base_q)]
    for w in rows:
        for name, q in w.get("quality", {}).items():
            table.append((f"S={w['S']} {name.replace('_', ' ')}", q))
    for name, q in table:
        print(f"{name:<24}" + "".join(f"{q.get(k, float('nan')):>14.3f}" for k in KEYS))
    (Path(args.out)).mkdir(parents=True, exist_ok=True)
    result = {
        "quick": args.quick,
        "records": len(records),
        "base_train_s": base_s,
        "base_quality": base_q,
        "rows": rows,
    }
    (Path(args.out) / ("sisa_quick.json" if args.quick else "sisa.json")).write_text(
        json.dumps(result, indent=1)
    )


if __name__ == "__main__":
    main()
