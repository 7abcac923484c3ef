"""Run one benchmark case in a fresh process and measure its peak memory.

CPU torch has no ``max_memory_allocated``, and freed memory stays in the allocator's pools, so
peaks measured one after another in one process would hide each other. Each case therefore runs
in its own interpreter: ``peak_mb`` is the process's peak resident set (Linux ``VmHWM``) minus
its resident set just before the case starts (after imports), i.e. the memory the case itself
needed: model, reference, optimizer state, activations. On CUDA it is
``torch.cuda.max_memory_allocated`` instead.

    python bench/_measure.py <module> <function> '<json kwargs>'   # prints one JSON line
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def in_subprocess(module: str, function: str, **kwargs) -> dict:
    """``bench/<module>.py``'s ``function(**kwargs)`` (returning a dict) in a fresh interpreter,
    with ``peak_mb`` added."""
    out = subprocess.run(
        [sys.executable, str(HERE / "_measure.py"), module, function, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module}.{function}({kwargs}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm_up() -> None:
    """Import lazily loaded modules and run one tiny training step, so the interpreter's one-time
    costs (model code, thread pools, allocator arenas) are in the baseline, not in the case."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    import genforget.lm.trainer  # noqa: F401

    cfg = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=2, target_modules=["q_proj"]))
    ids = torch.randint(0, 64, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    torch.optim.AdamW(model.parameters()).step()


def main() -> None:
    module, function, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.path.insert(0, str(HERE))
    import torch

    torch.set_num_threads(1)
    fn = getattr(importlib.import_module(module), function)
    _warm_up()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:  # reset the peak to the current resident set (Linux >= 4.0), so import-time peaks don't count
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    base_kb = _status_kb("VmRSS")
    result = fn(**kwargs)
    if cuda:
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = (_status_kb("VmHWM") - base_kb) / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
