"""Command-line entry points behind the thin scripts in ``recipes/``.

Kept in the library so they are tested in-process; usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from genforget.config import UnlearnConfig, UsageError, parse_config


@dataclass
class UnlearnScriptArgs:
    """What to load and where to save, for ``recipes/unlearn_lm.py``."""

    model_name_or_path: str = field(
        default="", metadata={"help": "save_pretrained dir or hub id of the model"}
    )
    forget_data: str = field(default="", metadata={"help": "JSONL path, pii:forget, or tofu:<dir>:<split>"})
    retain_data: str = field(
        default="", metadata={"help": "same forms as forget_data; empty = no retain term"}
    )
    calibration_data: str = field(
        default="",
        metadata={"help": "never-seen data like the forget set (pii:calibration): enables calibrated stop"},
    )
    output_dir: str = field(default="", metadata={"help": "new (or empty) dir for the result"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    save_mode: str = field(
        default="auto", metadata={"help": "auto | full | adapter (PEFT dir; needs use_lora)"}
    )
    n_people: int = field(default=200, metadata={"help": "built-in corpus: people trained on"})
    n_passages: int = field(default=50, metadata={"help": "built-in corpus: passages trained on"})
    forget_frac: float = field(default=0.1, metadata={"help": "built-in corpus: forget share"})
    corpus_seed: int = field(default=0, metadata={"help": "built-in corpus: seed"})
    num_threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = leave as is)"})


def check_output_dir(path: str, overwrite: bool) -> Path:
    """Refuse a missing or non-empty output dir (unless ``overwrite``) before any work is done."""
    if not path:
        raise UsageError("output_dir is required: pass --output_dir runs/<name>")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output_dir {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"output_dir {out} is not empty; choose a new dir or pass --overwrite true")
    return out


def fingerprint(examples: list[dict]) -> str:
    """SHA-256 of the examples: a ledger can prove *which* data was forgotten without holding it."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex, sort_keys=True).encode())
    return h.hexdigest()


def unlearn_main(argv: list[str] | None = None) -> int:
    """``recipes/unlearn_lm.py``: load model and data, unlearn, save, write a run record."""
    import torch
    from accelerate import Accelerator, DistributedType

    from genforget.adapters import save_model
    from genforget.api import load_model
    from genforget.data.loaders import load_data_spec
    from genforget.lm.trainer import unlearn_lm

    try:
        args, cfg = parse_config((UnlearnScriptArgs, UnlearnConfig), argv)
        out = check_output_dir(args.output_dir, args.overwrite)
        if not args.model_name_or_path:
            raise UsageError("model_name_or_path is required")
        if not args.forget_data:
            raise UsageError("forget_data is required (a JSONL path, pii:forget or tofu:<dir>:<split>)")
        if args.save_mode == "adapter" and not cfg.use_lora:
            raise UsageError("save_mode adapter needs --use_lora true")
        corpus = (args.n_people, args.n_passages, args.forget_frac, args.corpus_seed)
        forget = load_data_spec(args.forget_data, *corpus)
        retain = load_data_spec(args.retain_data, *corpus) if args.retain_data else None
        calibration = load_data_spec(args.calibration_data, *corpus) if args.calibration_data else None
        if not forget:
            raise UsageError(f"forget_data {args.forget_data!r} holds no examples")
        model, tokenizer = load_model(args.model_name_or_path)
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    t0 = time.perf_counter()
    try:
        model = unlearn_lm(model, tokenizer, forget, retain, cfg, accelerator, calibration=calibration)
    except ValueError as e:  # e.g. tokenizer/model mismatch found while preparing
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    state_dict = None
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED) and not cfg.use_lora:
        # Sharded weights: every rank takes part in gathering the full state dict.
        state_dict = accelerator.get_state_dict(accelerator._models[0])
    if accelerator.is_main_process:
        if out.is_dir() and args.overwrite:
            shutil.rmtree(out)
        mode = save_model(model, tokenizer, out, args.save_mode, state_dict=state_dict)
        record = {
            "method": cfg.method,
            "config": dataclasses.asdict(cfg),
            "model": args.model_name_or_path,
            "saved_as": mode,
            "world_size": accelerator.num_processes,
            "forget_examples": len(forget),
            "forget_sha256": fingerprint(forget),
            "retain_examples": len(retain or []),
            "unlearn_s": seconds,
        }
        (out / "genforget_run.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"saved {mode} model to {out} ({seconds:.1f}s, {accelerator.num_processes} process(es))")
    accelerator.wait_for_everyone()
    return 0


@dataclass
class VictimScriptArgs:
    """Corpus and output of ``recipes/train_victim.py``."""

    output_dir: str = field(default="", metadata={"help": "new (or empty) dir for the model"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    splits: list[str] = field(
        default_factory=lambda: ["forget", "retain"],
        metadata={"help": "victim: forget retain; oracle: retain"},
    )
    tokenizer_from: str = field(
        default="", metadata={"help": "reuse this model dir's tokenizer (oracle: the victim's)"}
    )
    n_people: int = field(default=200, metadata={"help": "people trained on (forget + retain)"})
    n_passages: int = field(default=50, metadata={"help": "passages trained on"})
    forget_frac: float = field(default=0.1, metadata={"help": "forget share"})
    corpus_seed: int = field(default=0, metadata={"help": "corpus seed"})
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads"})


def train_victim_main(argv: list[str] | None = None) -> int:
    """``recipes/train_victim.py``: train a victim or oracle and ``save_pretrained`` it."""
    import torch
    from transformers import AutoTokenizer

    from genforget.data.pii import build_pii_corpus
    from genforget.lm.victim import VictimConfig, train_victim

    try:
        args, vcfg = parse_config((VictimScriptArgs, VictimConfig), argv)
        out = check_output_dir(args.output_dir, args.overwrite)
        bad = [s for s in args.splits if s not in ("forget", "retain")]
        if bad or not args.splits:
            raise UsageError(f"splits must be among forget, retain (got {args.splits})")
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_from) if args.tokenizer_from else None
        corpus = build_pii_corpus(args.n_people, args.n_passages, args.forget_frac, seed=args.corpus_seed)
    except (UsageError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.num_threads)
    if out.is_dir() and args.overwrite:
        shutil.rmtree(out)
    _, _, seconds = train_victim(corpus, tuple(args.splits), vcfg, tokenizer=tokenizer, output_dir=out)
    print(f"trained on {'+'.join(args.splits)} in {seconds:.1f}s; saved to {out}")
    return 0


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
