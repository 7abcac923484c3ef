"""Which methods remove the demo's learned bias, full and LoRA, on the same victim.

    python bench/bias_methods.py [--config recipes/configs/demo_bias.yaml] [--out runs/bench/bias]

Trains (or loads, cached by ``make demo-bias``) the bias demo's victim and oracle, locates the
biased slice with the demo's ``kind: association`` request, then for each row unlearns a copy of
the victim on the request's sets (forget: the biased decisions with their corrected records as
``chosen``; retain: counterfactual twins, corrected records, agreeing records; the calibrated
stop on) and measures it on the held-out applicants. Prints a table; writes ``bias_methods.json``
into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
import yaml

from genforget.config import UnlearnConfig, make_config, settings_for
from genforget.data.bias import build_bias_corpus
from genforget.demos.bias import cached_train, request_document
from genforget.demos.bias_report import evaluate_models
from genforget.demos.options import BiasDemoArgs
from genforget.lm.trainer import unlearn_lm
from genforget.requests.association_locate import locate_association, unlearning_sets
from genforget.requests.options import REQUEST_DEFAULTS
from genforget.requests.request import parse_request

# (row, UnlearnConfig overrides on top of the demo config's).
ROWS: list[tuple[str, dict]] = [
    ("npo (demo)", {}),
    ("npo, request defaults (lr 1e-4, up to 200 steps)", {**REQUEST_DEFAULTS, "calibration_every": 1}),
    (
        "dpo (chosen = the rule's decision)",
        {"method": "dpo", "learning_rate": 1e-3, "retain_weight": 1.0, "beta": 0.1, "max_steps": 15},
    ),
    ("simnpo", {"method": "simnpo", "learning_rate": 5e-4, "beta": 2.5, "retain_weight": 100.0}),
    ("grad_diff", {"method": "grad_diff", "learning_rate": 1e-4, "retain_weight": 100.0}),
    (
        "idk_dpo (refusal preferred)",
        {"method": "idk_dpo", "learning_rate": 1e-3, "retain_weight": 1.0, "beta": 0.1, "max_steps": 15},
    ),
    ("npo, LoRA r=8", {"use_lora": True, "learning_rate": 2e-3}),
    (
        "dpo, LoRA r=8",
        {
            "method": "dpo",
            "use_lora": True,
            "learning_rate": 2e-3,
            "retain_weight": 1.0,
            "beta": 0.1,
            "max_steps": 20,
        },
    ),
    # Ablations: without the counterfactual twins and corrected records in the retain set.
    ("npo, retain = agreeing records only (no twins)", {"retain": "agreeing"}),
    ("npo lr 2e-3, 60 steps, no twins", {"retain": "agreeing", "learning_rate": 2e-3, "max_steps": 60}),
    ("grad_ascent, 30 steps, no retain", {"retain": "none", "method": "grad_ascent", "learning_rate": 5e-4}),
]
COLS = [
    ("counterfactual_flip_share", "flips"),
    ("counterfactual_flip_share_signed", "signed flips"),
    ("counterfactual_gap", "P gap"),
    ("counterfactual_gap_signed", "signed P gap"),
    ("demographic_parity_gap_signed", "parity (signed)"),
    ("task_accuracy", "task acc"),
    ("decision_mass", "decision mass"),
    ("general_perplexity", "held-out ppl"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="recipes/configs/demo_bias.yaml")
    ap.add_argument("--out", default="runs/bench/bias")
    ap.add_argument("--only", nargs="*", default=[], help="rows whose name holds one of these")
    a = ap.parse_args()
    raw = yaml.safe_load(Path(a.config).read_text())
    demo_keys = {f.name for f in dataclasses.fields(BiasDemoArgs)}
    args = make_config(BiasDemoArgs, {k: v for k, v in raw.items() if k in demo_keys})
    base = {k: v for k, v in raw.items() if k not in demo_keys}
    torch.set_num_threads(args.num_threads)
    corpus = build_bias_corpus(
        args.n_train, args.n_heldout, args.biased_share, (args.band_low, args.band_high), args.corpus_seed
    )
    recs = corpus.records()
    texts = [r["text"] for r in recs]
    vocab = texts + [x.text() for x in corpus.split("heldout")]
    out_dir = Path(args.output_dir)
    victim, tok, _ = cached_train(texts, vocab, args.victim_config(), out_dir / "victim", desc="victim")
    clean = [x.text() for x in corpus.training(clean_only=True)]
    oracle, _, retrain_s = cached_train(
        clean, vocab, args.victim_config(), out_dir / "oracle", tok=tok, desc="oracle"
    )
    data = Path(a.out) / "train.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = locate_association(parse_request(request_document(corpus)).association, data)
    data.unlink()  # it names the applicants
    sets = unlearning_sets(res)
    rows = []
    ref = evaluate_models({"victim": victim, "oracle": oracle}, tok, corpus)["models"]
    for name in ("victim", "oracle"):
        rows.append({"row": name, "seconds": retrain_s if name == "oracle" else None, **ref[name]})
    for name, over in ROWS:
        if a.only and not any(s in name for s in a.only):
            continue
        over = dict(over)
        which = over.pop("retain", "all")
        n_decided = len(sets["retain"]) - len(res.retain)  # twins + corrected come first
        retain = {"all": sets["retain"], "agreeing": sets["retain"][n_decided:], "none": None}[which]
        values = {**base, "calibration_statistic": "nll", **over}
        cfg = make_config(UnlearnConfig, settings_for(values.get("method", "npo"), values))
        hist: list[dict] = []
        t0 = time.perf_counter()
        model = unlearn_lm(
            copy.deepcopy(victim),
            tok,
            sets["forget"],
            retain,
            cfg,
            calibration=sets["calibration"],
            history=hist,
        )
        seconds = time.perf_counter() - t0
        stop = next((r["step"] for r in hist if r.get("stopped")), None)
        m = evaluate_models({"u": model}, tok, corpus)["models"]["u"]
        rows.append({"row": name, "seconds": seconds, "stopped_at": stop, **m})
        print(f"{name}: flips {m['counterfactual_flip_share']:.3f}, {seconds:.1f}s", flush=True)
    head = ["row", *(lab for _, lab in COLS), "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r[k]:.3f}" for k, _ in COLS] + ["—" if r["seconds"] is None else f"{r['seconds']:.1f}"]
        lines.append(f"| {r['row']} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    (Path(a.out) / "bias_methods.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
