"""Growth: unlearning time and memory as the forget set grows and as the model grows.

    python bench/growth.py [--victim runs/demo/victim] [--out runs/bench]

Forget-set growth: the demo victim (run ``make demo`` or ``bench/quality_cost.py`` first, which
train it) unlearns 1x, 2x, 5x and 10x the demo's forget set (25 examples; the larger sets take
people the victim memorised from the retain side) for two epochs of NPO with the demo's retain
term, full fine-tuning with cached reference log-probs. Model growth: three sizes of the tiny
Llama config (random weights), the same 25 forget examples, 20 steps. Each case runs in a fresh
process (``_measure.py``) for its peak memory. Writes ``growth.json``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

from genforget.config import UnlearnConfig
from genforget.data.pii import build_pii_corpus
from genforget.lm.trainer import unlearn_lm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import demo_victim_args  # noqa: E402
from _measure import in_subprocess  # noqa: E402

FACTORS = (1, 2, 5, 10)
MODEL_SIZES = {  # name -> (hidden, layers, heads, intermediate)
    "demo (x1)": (128, 2, 4, 256),
    "x2 width": (256, 2, 4, 512),
    "x4 width, x2 depth": (512, 4, 8, 1024),
}


def _examples():
    corpus = build_pii_corpus(200, 50, 0.1, seed=0)
    base = corpus.unlearn_examples("forget")
    return base, base + corpus.unlearn_examples("retain"), corpus.full_text_examples("retain")


def forget_case(victim: str, n: int) -> dict:
    """Two epochs of NPO over the first ``n`` forget examples of the demo victim."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, pool, retain = _examples()
    model, tok = AutoModelForCausalLM.from_pretrained(victim), AutoTokenizer.from_pretrained(victim)
    steps = math.ceil(2 * n / 8)
    cfg = UnlearnConfig(
        method="npo", learning_rate=5e-4, beta=0.02, max_steps=steps, retain_batch_size=12, retain_weight=3.0
    )
    history: list[dict] = []
    t0 = time.perf_counter()
    unlearn_lm(model, tok, pool[:n], retain, cfg, history=history)
    return {
        "n_forget": n,
        "steps": steps,
        "seconds": time.perf_counter() - t0,
        "step_s": statistics.median(h["seconds"] for h in history),
    }


def model_case(victim: str, size: str) -> dict:
    """20 NPO steps on a random-weight Llama of one of :data:`MODEL_SIZES`."""
    from transformers import AutoTokenizer

    from genforget.lm.victim import VictimConfig, build_model

    base, _, retain = _examples()
    tok = AutoTokenizer.from_pretrained(victim)
    hidden, layers, heads, inter = MODEL_SIZES[size]
    model = build_model(
        VictimConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter
        ),
        tok,
    )
    cfg = UnlearnConfig(method="npo", learning_rate=5e-4, beta=0.02, max_steps=20, retain_batch_size=12)
    history: list[dict] = []
    t0 = time.perf_counter()
    unlearn_lm(model, tok, base, retain, cfg, history=history)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - t0,
        "step_s": statistics.median(h["seconds"] for h in history[2:]),
    }


def main() -> None:
    args = demo_victim_args(__doc__, out="runs/bench")
    victim = str(Path(args.victim).resolve())
    n0 = len(_examples()[0])
    forget_rows = []
    for f in FACTORS:
        print(f"[growth] forget set x{f}", flush=True)
        forget_rows.append({"factor": f, **in_subprocess("growth", "forget_case", victim=victim, n=f * n0)})
    model_rows = []
    for size in MODEL_SIZES:
        print(f"[growth] model {size}", flush=True)
        model_rows.append({"size": size, **in_subprocess("growth", "model_case", victim=victim, size=size)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "growth.json").write_text(json.dumps({"forget_set": forget_rows, "model": model_rows}, indent=2))
    print("\nForget-set growth (demo victim, NPO, 2 epochs, batch 8 + 12 retain):\n")
    print("| forget set | examples | steps | total s | s / example | step s | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for r in forget_rows:
        print(
            f"| x{r['factor']} | {r['n_forget']} | {r['steps']} | {r['seconds']:.1f} | "
            f"{r['seconds'] / r['n_forget']:.3f} | {r['step_s']:.3f} | {r['peak_mb']:.0f} |"
        )
    print("\nModel growth (random weights, 25 forget examples, 20 NPO steps):\n")
    print("| model | parameters | total s | step s | peak MB |")
    print("|---|---|---|---|---|")
    for r in model_rows:
        print(
            f"| {r['size']} | {r['params'] / 1e6:.2f}M | {r['seconds']:.1f} | {r['step_s']:.3f} | {r['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
