"""The command line of the benchmarks that start from the `make demo` victim, declared once so
their ``--victim``/``--out`` flags, thread count and missing-victim message agree."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def demo_victim_args(doc: str, out: str) -> argparse.Namespace:
    """Parse ``--victim`` (default ``runs/demo/victim``) and ``--out`` (default ``out``).

    Sets one torch thread, because the benches report single-core timings, and exits with the fix
    when ``--victim`` holds no trained model, instead of a load error deep in the run.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--victim", default="runs/demo/victim", help="save_pretrained dir of the demo victim")
    ap.add_argument("--out", default=out, help="where the results go")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not (Path(args.victim) / "config.json").is_file():
        sys.exit(f"no trained victim in {args.victim}: run `make demo` (or bench/quality_cost.py) first")
    return args
