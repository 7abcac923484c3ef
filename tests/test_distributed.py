"""Multi-process accelerate on the CPU: two gloo processes give the single-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_recipes import ROOT, _args


def _launch(config: str, out, *extra: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "recipes/accelerate" / config),
        "--num_cpu_threads_per_process",
        "1",
        str(ROOT / "recipes/unlearn_lm.py"),
        *extra,
    ]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "genforget_run.json").read_text())


def test_two_processes_match_one_with_the_same_global_batch(victim_dir, tmp_path):
    # The fixture corpus has 6 forget examples and 24 retain texts: global batches of 4 and 10,
    # split 2 + 2 and 5 + 5 over two processes. Neither set divides by its batch: accelerate's
    # loader used to pad the short last batch on one process, and the runs drifted apart.
    common = ("--method", "npo", "--learning_rate", "1e-3", "--beta", "0.5", "--max_steps", "5")
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _launch(
        "cpu.yaml", one, *_args(victim_dir, one, *common, "--batch_size", "4", "--retain_batch_size", "10")
    )
    r2 = _launch(
        "cpu_2proc.yaml",
        two,
        *_args(victim_dir, two, *common, "--batch_size", "2", "--retain_batch_size", "5"),
    )
    assert r1["world_size"] == 1
    assert r2["world_size"] == 2  # really two processes (accelerate's MULTI_CPU would run one)
    assert r2["engine"]["distributed_type"] == "MULTI_CPU" and r2["engine"]["requested"] is None
    losses = [(a["loss"], b["loss"]) for a, b in zip(r1["losses"], r2["losses"], strict=True)]
    assert len(losses) == 5 and max(abs(a - b) for a, b in losses) < 1e-4, losses
    w1, w2 = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    w0 = load_file(victim_dir / "model.safetensors")
    moved = max((w1[k] - w0[k]).abs().max().item() for k in w0)
    assert moved > 1e-3  # the runs trained, so agreement below is not trivial
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=moved * 0.02), k


@pytest.mark.parametrize(
    "name",
    [
        "cpu.yaml",
        "cpu_2proc.yaml",
        "single_gpu.yaml",
        "ddp.yaml",
        "fsdp.yaml",
        "deepspeed_zero2.yaml",
        "deepspeed_zero3.yaml",
    ],
)
def test_shipped_accelerate_configs_parse(name):
    import yaml

    cfg = yaml.safe_load((ROOT / "recipes/accelerate" / name).read_text())
    assert cfg["distributed_type"] in ("NO", "MULTI_GPU", "FSDP", "DEEPSPEED")
    assert cfg["num_processes"] >= 1 and cfg["num_machines"] == 1


def test_a_usage_error_under_two_processes_is_one_line_and_exit_2(victim_dir, tmp_path):
    # Found after the processes start (the model is loaded on each): a LoRA name it lacks.
    bad = ("--use_lora", "true", "--lora_target_modules", "c_attn", "--max_steps", "1")
    common = ["--model_name_or_path", str(victim_dir), "--forget_data", "pii:forget", *bad]
    common += ["--n_people", "20", "--n_passages", "10", "--forget_frac", "0.2"]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    config = str(ROOT / "recipes/accelerate/cpu_2proc.yaml")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "genforget.cli.main", "unlearn", "--accelerate_config", config, *common]
    proc = subprocess.run(
        [*cmd, "--output_dir", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("match no linear layer") == 1
    assert proc.stderr.count("error: lora_target_modules ['c_attn']") == 1
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
    assert not out.exists()
    # Plain `accelerate launch`: the main process alone prints it; each process exits 2 (the launcher
    # itself then reports the failed processes: use --accelerate_config for one clean line).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config]
    launch += ["--num_cpu_threads_per_process", "1", str(ROOT / "recipes/unlearn_lm.py"), *common]
    proc = subprocess.run(
        [*launch, "--output_dir", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode != 0
    assert proc.stderr.count("match no linear layer") == 1 and "exitcode  : 2" in proc.stderr
