"""``genforget eval`` / ``eval/run.py``: evaluate saved models on a suite, write the reports."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from genforget.cli.common import check_output_dir
from genforget.config import UsageError, parse_config


@dataclass
class EvalScriptArgs:
    """Models and suite of ``eval/run.py``."""

    model: list[str] = field(default_factory=list, metadata={"help": "unlearned model dir(s) to evaluate"})
    suite: str = field(default="pii", metadata={"help": "suite name in eval/suites/ or a YAML path"})
    oracle: str = field(
        default="", metadata={"help": "retrained (retain-only) model dir: forget quality, PrivLeak"}
    )
    victim: str = field(default="", metadata={"help": "model before unlearning: recovered shares of audits"})
    output_dir: str = field(default="", metadata={"help": "report dir (default runs/eval/<suite>-<time>)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads"})


def eval_main(argv: list[str] | None = None) -> int:
    """``eval/run.py``: load models, run the suite, write the three report files."""
    import torch

    from genforget.api import load_model
    from genforget.harness import load_suite, run_suite
    from genforget.report import write_report

    try:
        (args,) = parse_config((EvalScriptArgs,), argv)
        if not args.model:
            raise UsageError("--model is required (one or more model dirs)")
        suite = load_suite(args.suite)
        out = check_output_dir(
            args.output_dir or f"runs/eval/{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}", args.overwrite
        )
        models = {}
        for role, path in (
            [("victim", args.victim)]
            + [(Path(m).name or m, m) for m in args.model]
            + [("oracle", args.oracle)]
        ):
            if path:
                if role in models:
                    raise UsageError(f"two models are named {role!r}; give them distinct directory names")
                models[role] = load_model(path)
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.num_threads)
    report = run_suite(models, suite, method=_method_of(args.model))
    report["config"]["models"] = {"victim": args.victim, "evaluated": args.model, "oracle": args.oracle}
    if out.is_dir() and args.overwrite:
        shutil.rmtree(out)
    paths = write_report(report, out)
    print(f"report: {paths['md']}, {paths['json']}, {paths['png']}")
    return 0


def _method_of(dirs: list[str]) -> str:
    """The unlearning method recorded in the (first) model dir's run record, if any."""
    for d in dirs:
        rec = Path(d) / "genforget_run.json"
        if rec.is_file():
            return json.loads(rec.read_text()).get("method", "unknown")
    return "unknown"
