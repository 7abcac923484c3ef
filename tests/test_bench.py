"""Benchmark plumbing: the memory probe measures what a case allocates; the GPU check's code path
runs (tiny, on the CPU) in all three modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def test_chunked_logprobs_peak_below_full_log_softmax():
    from _measure import in_subprocess

    kw = {"vocab": 32_000, "batch": 2, "length": 256}
    # a chunk of half a row, as the shipped 2**26 elements are of a 128k-vocabulary batch
    chunked = in_subprocess("step_cost", "logprob_case", mode="chunked", chunk_elements=128 * 32_000, **kw)
    full = in_subprocess("step_cost", "logprob_case", mode="full", **kw)
    assert chunked["logp_sum"] == __import__("pytest").approx(full["logp_sum"], rel=1e-3)
    # full: bf16 logits + their float32 copy + float32 log-softmax (+ gradients) of 2 x 255 x 32k
    logits_mb = 2 * 255 * 32_000 * 4 / 2**20
    assert full["peak_mb"] - chunked["peak_mb"] > 0.5 * logits_mb


def test_gpu_check_code_path_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "bench/gpu_check.py"), "--size", "tiny", "--steps", "3", "--batch", "2"]
    cmd += ["--length", "16", "--out", str(out)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["mode"] for r in rows] == ["full", "lora", "qlora"]
    for r in rows:
        assert "error" not in r, r
        assert r["tokens_per_s"] > 0 and r["step_s"] > 0


def test_frontier_marks_dominated_rows_and_the_goal(tmp_path):
    from _frontier import pareto, plot

    def row(name, forget, kept, gap, cost):
        return {"model": name, "forget_pii_extraction": forget, "retain_pii_kept": kept}, {
            "relearn_max_gap": gap,
            "time_vs_retrain": cost,
        }

    rows = [
        {**a, **b}
        for a, b in (
            row("victim", 0.95, 1.0, None, 0.0),  # did not forget: no candidate
            row("oracle", 0.0, 1.0, None, 1.0),  # the retrain: gap 0 by definition
            row("npo", 0.0, 0.95, 0.55, 0.03),  # cheapest: on the frontier
            row("undo", 0.0, 0.62, 0.08, 0.14),  # holds best among the cheap ones
            row("sam", 0.0, 0.80, 0.60, 0.04),  # worse than npo on all three axes
            row("goal", 0.02, 0.92, 0.09, 0.30),  # meets every bar
        )
    ]
    pts = {p["model"]: p for p in pareto(rows)}
    assert set(pts) == {"oracle", "npo", "undo", "sam", "goal"}
    assert pts["oracle"]["relearn_max_gap"] == 0.0
    assert {m for m, p in pts.items() if p["on_frontier"]} == {"oracle", "npo", "undo", "goal"}
    assert {m for m, p in pts.items() if p["meets_bars"]} == {"goal"}  # the oracle costs 1 retrain
    png = plot(list(pts.values()), tmp_path / "f.png", "test")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_robust_large_size_builds_a_9x_victim_with_its_own_cache_key():
    """``bench/robust.py --size large``: the victim built from its config has the stated 4.2M
    parameters (hand-counted: tied embeddings, per layer 4 attention + 3 MLP matrices and two
    norms), 9x the demo's 459k, and its cache key and folder differ from the demo's."""
    from robust import DEMO, SIZES, sized_demo

    from genforget.demos.cache import corpus_lm_key
    from genforget.demos.pii import demo_victim_config, split_demo_config
    from genforget.lm.victim import build_model, train_tokenizer

    demo, _ = split_demo_config(ROOT / DEMO)
    corpus = demo.build_corpus()
    tok = train_tokenizer([p.bio()["text"] for p in corpus.people] + [t.text for t in corpus.passages], 1024)

    def n_params(h: int, layers: int) -> int:
        return len(tok) * h + layers * (4 * h * h + 3 * h * 2 * h + 2 * h) + h

    small, large = demo_victim_config(sized_demo(demo, "demo")), demo_victim_config(sized_demo(demo, "large"))
    counts = {}
    for name, cfg in (("demo", small), ("large", large)):
        counts[name] = sum(p.numel() for p in build_model(cfg, tok).parameters())
        assert counts[name] == n_params(cfg.hidden_size, cfg.num_hidden_layers)
    assert len(tok) == 1024 and counts == {"demo": 459_392, "large": 4_197_632}
    assert small.max_steps == 600 and large.max_steps == 600  # the demo's untouched; the large's stated
    assert corpus_lm_key(corpus, ("retain",), small) != corpus_lm_key(corpus, ("retain",), large)
    assert sized_demo(demo, "large").output_dir != demo.output_dir == "runs/demo"
    assert SIZES["large"][3] != SIZES["demo"][3]
