"""Sharded-engine check: 2 NPO steps under FSDP2 and DeepSpeed ZeRO-3 vs one process, per engine
the engine that ran and how closely its per-step losses match.

    python bench/gpu_sharded.py            # on the GPUs present (part of bench/gpu_check.sh)
    python bench/gpu_sharded.py --cpu      # the same on 2 CPU processes (gloo), no GPU needed

Each engine runs ``recipes/unlearn_lm.py`` through ``accelerate launch`` with the shipped config
(``recipes/accelerate/fsdp.yaml``, ``deepspeed_zero3.yaml``) on every visible GPU, or its CPU
adaptation (:func:`genforget.lm.distributed.cpu_adapted_config`, launched with
``GENFORGET_CPU_ENGINE=1``); the reference is one process (``single_gpu.yaml`` / ``cpu.yaml``)
at the same global batch. ``--require_engine true`` makes a run that fell back to DDP fail.
Tolerance on the per-step loss: 1e-4 absolute in fp32 (CPU), 2 % relative in bf16 (GPU: the
shipped configs train in bf16, and bf16 autocast and DeepSpeed's bf16 round differently).
Writes ``runs/bench/gpu_sharded.json``; exits 1 when an engine fails or its losses do not match.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from gpu_check import _examples, _tokenizer  # noqa: E402


def _model(workdir: Path, gpu: bool) -> Path:
    """A random Llama saved with its tokenizer: ~60M parameters on a GPU, tiny on the CPU."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, inter, vocab = (512, 8, 1408, 8000) if gpu else (64, 2, 128, 512)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=8 if gpu else 4,
        intermediate_size=inter,
        max_position_embeddings=256,
        pad_token_id=vocab - 3,
    )
    torch.manual_seed(0)
    path = workdir / "model"
    LlamaForCausalLM(cfg).save_pretrained(path)
    _tokenizer(vocab).save_pretrained(path)
    for name, seed in (("forget", 0), ("retain", 1)):
        rows = _examples(24, 48, vocab, seed)
        (workdir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _launch(config: Path, out: Path, workdir: Path, batch: int, steps: int, force: bool) -> dict:
    opts = {
        "model_name_or_path": workdir / "model",
        "forget_data": workdir / "forget.jsonl",
        "retain_data": workdir / "retain.jsonl",
        "output_dir": out,
        "method": "npo",
        "learning_rate": "1e-4",
        "max_steps": steps,
        "batch_size": batch,
        "retain_batch_size": batch,
        "max_length": 64,
        "require_engine": "true",
    }
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    cmd += [str(ROOT / "recipes/unlearn_lm.py"), *(x for k, v in opts.items() for x in (f"--{k}", str(v)))]
    env = {**os.environ, "TQDM_DISABLE": "1", "GENFORGET_CPU_ENGINE": "1" if force else "0"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400, cwd=ROOT)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1][:300]
            if proc.stderr.strip()
            else f"rc {proc.returncode}"
        }
    record = json.loads((out / "genforget_run.json").read_text())
    line = next((x for x in proc.stdout.splitlines() if x.startswith("engine:")), "")
    return {
        "engine": record["engine"],
        "line": line,
        "losses": [r["loss"] for r in record["losses"]],
        "s": time.perf_counter() - t0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="2 gloo CPU processes instead of the GPUs")
    ap.add_argument("--engines", nargs="+", default=["fsdp", "deepspeed_zero3"])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--out", default="runs/bench/gpu_sharded.json")
    args = ap.parse_args()
    gpu = torch.cuda.is_available() and not args.cpu
    n = torch.cuda.device_count() if gpu else 2
    per_process = 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _model(workdir, gpu)
        single = ROOT / "recipes/accelerate" / ("single_gpu.yaml" if gpu else "cpu.yaml")
        ref = _launch(single, workdir / "ref", workdir, per_process * n, args.steps, force=False)
        print(f"[gpu_sharded] reference, 1 process: {ref.get('line') or ref.get('error')}", flush=True)
        for engine in args.engines:
            shipped = ROOT / "recipes/accelerate" / f"{engine}.yaml"
            if engine.startswith("deepspeed"):
                try:
                    import deepspeed  # noqa: F401
                except ImportError:
                    results.append(
                        {
                            "engine": engine,
                            "error": "deepspeed not installed (pip install genforget[distributed])",
                        }
                    )
                    continue
            if gpu:
                import yaml

                cfg = yaml.safe_load(shipped.read_text())
                cfg["num_processes"] = n
                config = workdir / f"{engine}.yaml"
                config.write_text(yaml.safe_dump(cfg))
            else:
                from genforget.lm.distributed import cpu_adapted_config

                config = cpu_adapted_config(shipped, workdir / f"{engine}.yaml", num_processes=n)
            run = _launch(config, workdir / engine, workdir, per_process, args.steps, force=not gpu)
            row = {"engine": engine, "processes": n, **run}
            if "losses" in run and "losses" in ref:
                diffs = [abs(a - b) for a, b in zip(run["losses"], ref["losses"], strict=True)]
                tol = [2e-2 * abs(b) if gpu else 1e-4 for b in ref["losses"]]
                row.update(
                    max_abs_diff=max(diffs), match=all(d <= t for d, t in zip(diffs, tol, strict=True))
                )
            results.append(row)
            print(f"[gpu_sharded] {engine}: {run.get('line') or run.get('error')}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"reference": ref, "runs": results}, indent=2))
    print(
        "\n| engine | processes | ran as | losses (ref) | max abs diff | match |\n|---|---|---|---|---|---|"
    )
    for r in results:
        if "error" in r:
            print(f"| {r['engine']} | {n} | error: {r['error'][:90]} | | | no |")
            continue
        e = r["engine"]
        ran = e["distributed_type"] + (
            f" ZeRO-{e['zero_stage']}" if "zero_stage" in e else f" v{e.get('fsdp_version', '')}"
        )
        losses = ", ".join(f"{x:.4f}" for x in r["losses"])
        ref_losses = ", ".join(f"{x:.4f}" for x in ref.get("losses", []))
        print(
            f"| {r['engine']} | {n} | {ran} | {losses} ({ref_losses}) | {r.get('max_abs_diff', float('nan')):.2e} | {'yes' if r.get('match') else 'NO'} |"
        )
    return 0 if results and all(r.get("match") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
