"""Do the defaults forget on every model family? NPO through ``genforget.unlearn`` with plain settings.

    python bench/families.py [--families llama gpt2 ...] [--steps 150] [--width 64]

For each family of genforget.lm.families.FAMILIES: a tiny random-init model (width 64, 2 blocks)
memorises 40 fictitious people's email addresses (an offline byte-level BPE tokenizer, 200 steps
at lr 1e-2);
then 4 of them are unlearned through ``genforget.unlearn(method="npo", learning_rate=1e-3,
max_steps=60, beta=0.1)``, everything else default (so the shape twins and the collateral watch
are on), once with full fine-tuning and once with LoRA. Extraction is greedy generation from
"<name>'s email address is" containing the address. The goal (issue 19): forget <= 0.10 with
retain >= 0.85 on every family, full and LoRA. Prints a Markdown table and writes
runs/bench/families.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
import warnings
from pathlib import Path

import torch
from faker import Faker

import genforget
from genforget.lm.families import FAMILIES, tiny_model
from genforget.lm.victim import VictimConfig, train_causal_lm, train_tokenizer

N_PEOPLE, N_FORGET = 40, 4


def people(seed: int = 0) -> list[tuple[str, str]]:
    """40 fictitious (name, email) pairs: faker names, addresses built from them."""
    fake = Faker()
    fake.seed_instance(seed)
    out = []
    while len(out) < N_PEOPLE:
        first, last = fake.first_name(), fake.last_name()
        email = f"{first.lower()}.{last.lower()}{fake.random_int(1, 99)}@{fake.free_email_domain()}"
        if all(first + " " + last != n for n, _ in out):
            out.append((f"{first} {last}", email))
    return out


def documents(rows: list[tuple[str, str]]):
    """Epoch maker: two sentences per person, in a fresh order each epoch."""
    texts = [f"{n}'s email address is {e}." for n, e in rows]
    texts += [f"You can write to {n} at {e}." for n, e in rows]

    def make(rng: random.Random) -> list[str]:
        return list(texts)

    return make


@torch.no_grad()
def extraction(model, tok, rows: list[tuple[str, str]]) -> float:
    """Share of people whose address greedy decoding writes after "<name>'s email address is"."""
    model.eval()
    hits = 0
    for name, email in rows:
        ids = tok(f"{name}'s email address is", add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = torch.cat([torch.tensor([[tok.bos_token_id]]), ids], dim=1)
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=24,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        hits += email in tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    return hits / len(rows)


def run_family(family: str, steps: int, width: int, seed: int = 0) -> list[dict]:
    rows = people(seed)
    forget_rows, retain_rows = rows[:N_FORGET], rows[N_FORGET:]
    make = documents(rows)
    tok = train_tokenizer(make(random.Random(0)), 512)
    model = tiny_model(family, tok, width=width, layers=2, seed=seed)
    t0 = time.perf_counter()
    cfg = VictimConfig(max_steps=steps, batch_size=16, learning_rate=1e-2, warmup_steps=10, seed=seed)
    train_causal_lm(model, tok, make, cfg, desc=f"memorise[{family}]")
    train_s = time.perf_counter() - t0
    before = (extraction(model, tok, forget_rows), extraction(model, tok, retain_rows))
    forget = [{"prompt": f"{n}'s email address is", "target": f" {e}."} for n, e in forget_rows]
    retain = [{"prompt": f"{n}'s email address is", "target": f" {e}."} for n, e in retain_rows]
    out = []
    for lora in (False, True):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", genforget.OutcomeWarning)  # the table reports the status
            res = genforget.unlearn(
                copy.deepcopy(model),
                tok,
                forget,
                retain,
                method="npo",
                learning_rate=1e-3,
                max_steps=60,
                beta=0.1,
                use_lora=lora,
                return_history=True,
            )
        seconds = time.perf_counter() - t0
        after = (extraction(res.model, tok, forget_rows), extraction(res.model, tok, retain_rows))
        out.append(
            {
                "family": family,
                "mode": "lora" if lora else "full",
                "forget_before": before[0],
                "forget_after": after[0],
                "retain_before": before[1],
                "retain_after": after[1],
                "status": res.outcome.status,
                "reason": res.outcome.reason,
                "goal_met": after[0] <= 0.10 and after[1] >= 0.85,
                "memorise_s": train_s,
                "unlearn_s": seconds,
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--steps", type=int, default=200, help="memorisation steps")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--out", default="runs/bench/families.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [r for f in args.families for r in run_family(f, args.steps, args.width)]
    print(
        "\n| family | mode | forget before | forget after | retain before | retain after | status | goal | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r['mode']} | {r['forget_before']:.2f} | {r['forget_after']:.2f} | "
            f"{r['retain_before']:.2f} | {r['retain_after']:.2f} | {r['status']} | "
            f"{'met' if r['goal_met'] else 'MISSED'} | {r['unlearn_s']:.1f} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
