"""Step cost: genforget as shipped vs the naive reference the open toolkits use.

    python bench/step_cost.py [--steps 8] [--out runs/bench]

For each registered LM method, one model (a ~7M-parameter Llama from config, random weights,
batches from the built-in corpus) is unlearned twice in the same process, interleaved: (a) as
shipped — NPO-style methods read reference log-probs cached once (full fine-tuning) or from the
same model with its adapter off (LoRA); (b) naive — a deep-copied frozen reference whose forward
runs every step (``reference=copy``). Reported: median step time, tokens/s (non-pad tokens through
the trained model) and peak memory (each variant in a fresh process, see ``_measure.py``).

Two more tables: LoRA NPO on a ~100M-parameter Llama config with gradient checkpointing, at
micro-batch 1 and 4 (adapter off vs a deep-copied reference: the memory of a second model), and per-token log-probs with a 128k vocabulary,
chunked (as shipped) vs one full-vocabulary float32 log-softmax of the whole batch.
Writes ``step_cost.json`` (method -> step_s, naive_step_s, peak_mb, naive_peak_mb, ...),
``lora_memory.json`` and ``chunked_logprobs.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from genforget.config import UnlearnConfig
from genforget.data.pii import build_pii_corpus
from genforget.lm.trainer import unlearn_lm
from genforget.lm.victim import train_tokenizer
from genforget.methods.registry import METHODS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import in_subprocess  # noqa: E402

SIZES = {  # name -> (hidden, layers, heads, intermediate, vocab); vocab None = the tokenizer's
    "7m": (384, 4, 6, 1024, None),
    "100m": (640, 12, 10, 1728, 32000),
}


def _setup(size: str, n_retain: int = 64):
    corpus = build_pii_corpus(200, 50, 0.1, seed=0)
    tok = train_tokenizer([ex["text"] for ex in corpus.full_text_examples("retain")], 1024)
    hidden, layers, heads, inter, vocab = SIZES[size]
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab or len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    return model, tok, corpus.unlearn_examples("forget"), corpus.full_text_examples("retain")[:n_retain]


def _config(method: str, reference: str, steps: int, **kw) -> UnlearnConfig:
    return UnlearnConfig(
        method=method,
        reference=reference,
        max_steps=steps,
        learning_rate=1e-4,
        # The whole 25-example forget set each step: every step then sees the same tokens (a
        # 16 + 9 split made step times alternate and medians swing by 15 %).
        batch_size=25,
        **kw,
    )


# What each variant switches: the reference (cached log-probs / adapter off vs a deep-copied model
# run every step), the LM head on target positions only, and one packed forget + retain forward.
# "naive" is the open toolkits' step (measured within 6 % of the reference toolkit's).
VARIANTS = {
    "naive": {"reference": "copy", "head": False, "pack": False},
    "cached reference": {"reference": "auto", "head": False, "pack": False},
    "+ target-only LM head": {"reference": "auto", "head": True, "pack": False},
    "shipped (+ packed forward)": {"reference": "auto", "head": True, "pack": True},
}
SHIPPED, NAIVE = "shipped (+ packed forward)", "naive"


@contextlib.contextmanager
def variant(name: str):
    """Switch the trainer to ``VARIANTS[name]`` (its reference is passed to the config)."""
    from genforget.lm import scoring, trainer

    v = VARIANTS[name]
    old = scoring.TARGET_ONLY_HEAD, trainer.PACK_FORGET_RETAIN
    scoring.TARGET_ONLY_HEAD, trainer.PACK_FORGET_RETAIN = v["head"], v["pack"]
    try:
        yield v["reference"]
    finally:
        scoring.TARGET_ONLY_HEAD, trainer.PACK_FORGET_RETAIN = old


def run_case(
    size: str,
    method: str,
    reference: str,
    retain: bool,
    steps: int,
    use_lora: bool = False,
    batch_size: int = 25,
    checkpointing: bool = False,
    variant_name: str = "",
) -> dict:
    """One unlearning run; returns median step time and tokens/s (peak memory: ``_measure``).

    ``variant_name`` (a :data:`VARIANTS` key) overrides ``reference`` and sets the trainer switches."""
    model, tok, forget, retain_ex = _setup(size)
    history: list[dict] = []
    with variant(variant_name or (NAIVE if reference == "copy" else SHIPPED)) as ref:
        cfg = _config(method, ref, steps, use_lora=use_lora, lora_target_modules=["q_proj", "v_proj"])
        cfg.batch_size = batch_size
        cfg.gradient_checkpointing = checkpointing
        unlearn_lm(model, tok, forget, retain_ex if retain else None, cfg, history=history)
    rows = history[2:] or history  # the first steps pay for allocation warm-up
    return {
        "step_s": statistics.median(h["seconds"] for h in rows),
        "tokens_per_s": statistics.median(h["tokens"] / h["seconds"] for h in rows),
    }


def time_variants(
    method: str, retain: bool, steps: int, names: tuple[str, ...] = (SHIPPED, NAIVE), repeats: int = 2
) -> dict[str, dict]:
    """Median step time and tokens/s of each variant in this one process, interleaved so drift
    hits all of them."""
    model, tok, forget, retain_ex = _setup("7m")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:
            history: list[dict] = []
            with variant(name) as ref:
                cfg = _config(method, ref, steps)
                unlearn_lm(
                    copy.deepcopy(model), tok, forget, retain_ex if retain else None, cfg, history=history
                )
            runs[name] += history[2:]
    return {
        n: {
            "step_s": statistics.median(h["seconds"] for h in rows),
            "tokens_per_s": statistics.median(h["tokens"] / h["seconds"] for h in rows),
        }
        for n, rows in runs.items()
    }


def time_pair(method: str, retain: bool, steps: int, repeats: int = 2) -> dict:
    """Shipped and naive step time in this one process, interleaved so drift hits both."""
    t = time_variants(method, retain, steps, (SHIPPED, NAIVE), repeats)
    return {
        "step_s": t[SHIPPED]["step_s"],
        "naive_step_s": t[NAIVE]["step_s"],
        "step_ratio": t[SHIPPED]["step_s"] / t[NAIVE]["step_s"],
        "tokens_per_s": t[SHIPPED]["tokens_per_s"],
        "naive_tokens_per_s": t[NAIVE]["tokens_per_s"],
    }


def logprob_case(
    mode: str, vocab: int = 128_000, batch: int = 4, length: int = 256, chunk_elements: int = 0
) -> dict:
    """Forward + backward of per-token log-probs with a large vocabulary, bf16 logits.

    ``chunk_elements`` overrides the shipped chunk size (``scoring.CHUNK_ELEMENTS``)."""
    import torch.nn.functional as F

    from genforget.lm import scoring
    from genforget.lm.scoring import token_logprobs

    if chunk_elements:
        scoring.CHUNK_ELEMENTS = chunk_elements

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=128,
    )
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    ids = torch.randint(0, vocab, (batch, length))
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    if mode == "chunked":
        logp, mask = token_logprobs(model, b)
        total = logp.sum()
    else:
        logits = model(input_ids=ids, attention_mask=b["attention_mask"]).logits[:, :-1]
        total = F.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).sum()
    total.backward()
    return {"logp_sum": float(total)}


def _table(header: list[str], rows: list[list]) -> str:
    fmt = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    for r in rows:
        fmt.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument(
        "--only",
        nargs="+",
        default=["methods", "ladder", "lora", "logprobs"],
        help="tables to run: methods (shipped vs naive per method), ladder (NPO, each candidate), lora, logprobs",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if "ladder" in args.only:
        ladder_table(args.steps, out)
    if "methods" in args.only:
        methods_table(args.steps, out)
    if "lora" in args.only:
        lora_table(out)
    if "logprobs" in args.only:
        logprobs_table(out)


def methods_table(steps: int, out: Path) -> None:
    """Shipped vs naive step time and peak memory of every loss-based LM method."""
    cases = [
        (m, cls.uses_retain)
        for m, cls in METHODS.items()
        if "lm" in cls.modalities and not getattr(cls, "one_shot", False)
    ]
    cases.append(("npo", False))
    results: dict[str, dict] = {}
    for method, retain in cases:
        key = method if retain or not METHODS[method].uses_retain else f"{method}_no_retain"
        print(f"[step_cost] {key}: timing", flush=True)
        r = time_pair(method, retain, steps)
        for ref, name in (("auto", "peak_mb"), ("copy", "naive_peak_mb")):
            r[name] = in_subprocess(
                "step_cost", "run_case", size="7m", method=method, reference=ref, retain=retain, steps=4
            )["peak_mb"]
        r["peak_ratio"] = r["peak_mb"] / r["naive_peak_mb"]
        r["retain_term"] = retain
        results[key] = r
    (out / "step_cost.json").write_text(json.dumps(results, indent=2))
    print(
        "\nStep cost, ~7M-parameter Llama, all 25 forget examples per step (+16 retain where the method has a retain term), shipped vs naive reference:\n"
    )
    print(
        _table(
            [
                "method",
                "step s",
                "naive step s",
                "ratio",
                "tokens/s",
                "naive tokens/s",
                "peak MB",
                "naive peak MB",
            ],
            [
                [
                    k,
                    r["step_s"],
                    r["naive_step_s"],
                    r["step_ratio"],
                    r["tokens_per_s"],
                    r["naive_tokens_per_s"],
                    r["peak_mb"],
                    r["naive_peak_mb"],
                ]
                for k, r in results.items()
            ],
        )
    )


def ladder_table(steps: int, out: Path) -> None:
    """NPO step time of each candidate speed-up, cumulatively, relative to the naive step."""
    print("\n[step_cost] NPO: what each candidate gives, step time relative to naive", flush=True)
    ladder: dict[str, dict] = {}
    for retain in (True, False):
        t = time_variants("npo", retain, steps, tuple(VARIANTS), repeats=2)
        ladder["npo" if retain else "npo_no_retain"] = {
            n: dict(r, ratio=r["step_s"] / t[NAIVE]["step_s"]) for n, r in t.items()
        }
    (out / "step_ladder.json").write_text(json.dumps(ladder, indent=2))
    print(
        _table(
            ["variant", "npo step s", "ratio", "npo, no retain: step s", "ratio"],
            [
                [
                    n,
                    ladder["npo"][n]["step_s"],
                    ladder["npo"][n]["ratio"],
                    ladder["npo_no_retain"][n]["step_s"],
                    ladder["npo_no_retain"][n]["ratio"],
                ]
                for n in VARIANTS
            ],
        )
    )


def lora_table(out: Path) -> None:
    """LoRA NPO peak memory on a ~100M Llama: adapter off vs a deep-copied reference."""
    print("\n[step_cost] LoRA NPO on a ~100M-parameter Llama (gradient checkpointing)", flush=True)
    # Micro-batch 1 is the regime LoRA is for (weights dominate memory); at micro-batch 4 the
    # 32k-vocabulary logits and activations dilute the saved copy, which stays one model's size.
    lora: dict = {"params": sum(p.numel() for p in _setup("100m")[0].parameters()), "rows": []}
    for batch in (1, 4):
        peaks = {
            ref: in_subprocess(
                "step_cost",
                "run_case",
                size="100m",
                method="npo",
                reference=ref,
                retain=False,
                steps=3,
                use_lora=True,
                batch_size=batch,
                checkpointing=True,
            )
            for ref in ("auto", "copy")
        }
        lora["rows"].append(
            {
                "batch_size": batch,
                "step_s": peaks["auto"]["step_s"],
                "naive_step_s": peaks["copy"]["step_s"],
                "peak_mb": peaks["auto"]["peak_mb"],
                "naive_peak_mb": peaks["copy"]["peak_mb"],
                "peak_ratio": peaks["auto"]["peak_mb"] / peaks["copy"]["peak_mb"],
            }
        )
    lora["peak_ratio"] = lora["rows"][0]["peak_ratio"]
    (out / "lora_memory.json").write_text(json.dumps(lora, indent=2))
    print(
        _table(
            ["micro-batch", "step s", "naive step s", "peak MB", "naive peak MB", "peak ratio"],
            [
                [
                    r["batch_size"],
                    r["step_s"],
                    r["naive_step_s"],
                    r["peak_mb"],
                    r["naive_peak_mb"],
                    r["peak_ratio"],
                ]
                for r in lora["rows"]
            ],
        )
        + f"\n{lora['params'] / 1e6:.0f}M parameters; shipped = adapter off, naive = deep-copied reference"
    )


def logprobs_table(out: Path) -> None:
    """Peak memory of per-token log-probs at a 128k vocabulary: chunked vs one full log-softmax."""
    print("\n[step_cost] per-token log-probs, vocabulary 128k, batch 4 x 256, bf16 logits", flush=True)
    chunk = {m: in_subprocess("step_cost", "logprob_case", mode=m) for m in ("chunked", "full")}
    chunk["peak_ratio"] = chunk["chunked"]["peak_mb"] / chunk["full"]["peak_mb"]
    (out / "chunked_logprobs.json").write_text(json.dumps(chunk, indent=2))
    print(
        _table(
            ["log-probs", "peak MB"],
            [
                ["chunked (shipped)", chunk["chunked"]["peak_mb"]],
                ["full float32 log-softmax", chunk["full"]["peak_mb"]],
            ],
        )
    )


if __name__ == "__main__":
    main()
