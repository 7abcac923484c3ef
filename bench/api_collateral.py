"""The plain API's collateral damage, with and without its automatic calibration twins.

    python bench/api_collateral.py [--victim runs/demo/victim]

The README's Python API example (NPO, LoRA, lr 5e-4, 100 steps, beta 0.02, the retain texts
given) used to forget the phone numbers of 3 of the demo's 20 forget people: once with the stop
off (``calibration=False``, what the API did before) and once as shipped (``calibration`` left
out: shape twins of the 3 phone numbers, and other people's phone-shaped strings in the retain
texts watched). Reports phone extraction of the 3 targeted people, of all 20 forget people, of
the retained people, and all retained PII. Writes runs/bench/api_collateral.json.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import genforget
from genforget.data.pii import build_pii_corpus
from genforget.evaluation.split import EvalSplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import demo_victim_args  # noqa: E402


def main() -> None:
    args = demo_victim_args(__doc__, out="runs/bench/api_collateral.json")
    corpus = build_pii_corpus(200, 50, 0.1, seed=0)
    victim, tok = genforget.load_model(args.victim)
    targeted = corpus.persons("forget")[:3]
    forget = [{"prompt": p.probe("phone")["prompt"], "target": " " + p.pii["phone"]} for p in targeted]
    retain = corpus.full_text_examples("retain")
    groups = {
        "targeted phones (3)": [p.probe("phone") for p in targeted],
        "all forget phones (20)": [p.probe("phone") for p in corpus.persons("forget")],
        "retained people's phones": [p.probe("phone") for p in corpus.persons("retain")],
        "retained people's PII (all fields)": corpus.pii_probes("retain"),
    }

    def rates(model) -> dict[str, float]:
        return {
            g: genforget.evaluate(model, tok, EvalSplit(pii_probes=pr))["forget_pii_extraction"]
            for g, pr in groups.items()
        }

    rows = {"victim": dict(rates(victim), steps=0, seconds=0.0)}
    for name, calibration in (
        ("stop off (calibration=False)", False),
        ("shipped (twins + collateral)", None),
    ):
        t0 = time.perf_counter()
        res = genforget.unlearn(
            copy.deepcopy(victim),
            tok,
            forget,
            retain,
            method="npo",
            learning_rate=5e-4,
            max_steps=100,
            beta=0.02,
            use_lora=True,
            calibration=calibration,
            return_history=True,
        )
        seconds = time.perf_counter() - t0
        stop = next((r for r in res.history if r.get("stopped")), None)
        rows[name] = dict(
            rates(res.model),
            steps=stop["step"] if stop else sum(1 for r in res.history if "loss" in r),
            stop_reason=(stop or {}).get("stop_reason", "max_steps"),
            repair_steps=sum(1 for r in res.history if r.get("repair")),
            status=res.outcome.status,
            seconds=seconds,
        )
    print("\n| model | " + " | ".join(groups) + " | steps | stop | repair steps | outcome |")
    print("|---|" + "---|" * (len(groups) + 4))
    for name, r in rows.items():
        print(
            f"| {name} | "
            + " | ".join(f"{r[g]:.2f}" for g in groups)
            + f" | {r['steps']} | {r.get('stop_reason', '—')} | {r.get('repair_steps', '—')} | {r.get('status', '—')} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
