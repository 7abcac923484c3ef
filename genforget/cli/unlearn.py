"""``genforget unlearn`` / ``recipes/unlearn_lm.py``: load a causal LM and data, unlearn, save.

Usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from genforget.cli.common import LoadingArgs, check_accelerate_env, check_output_dir, fingerprint, raised_here
from genforget.config import UnlearnConfig, UsageError, parse_config
from genforget.io import atomic_dir


@dataclass
class UnlearnScriptArgs(LoadingArgs):
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
    require_engine: bool = field(
        default=False,
        metadata={
            "help": "fail (exit 2) when the launch config's FSDP/DeepSpeed is not the engine that runs"
        },
    )


def unlearn_main(argv: list[str] | None = None) -> int:
    """``recipes/unlearn_lm.py``: load model and data, unlearn, save, write a run record."""
    import torch

    from genforget.api import load_model
    from genforget.data.loaders import load_data_spec
    from genforget.lm.checkpoint import check_resume
    from genforget.lm.distributed import make_accelerator

    try:
        args, cfg = parse_config((UnlearnScriptArgs, UnlearnConfig), argv)
        out = check_output_dir(args.output_dir, args.overwrite)
        check_accelerate_env()
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
        resumed = None
        if cfg.save_every or cfg.resume_from:  # next to the output dir, which appears only at the end
            cfg = dataclasses.replace(cfg, checkpoint_dir=cfg.checkpoint_dir or f"{out}.checkpoints")
            resumed = check_resume(cfg, forget, retain, calibration)  # a wrong one: before the model loads
        model, tokenizer = load_model(
            args.model_name_or_path, allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code
        )
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    accelerator = make_accelerator()
    try:
        return _run(args, cfg, out, accelerator, model, tokenizer, forget, retain, calibration, resumed)
    finally:
        accelerator.end_training()  # destroys the process group: no abort at exit


def _run(args, cfg, out, accelerator, model, tokenizer, forget, retain, calibration, resumed) -> int:
    """Train, gather (sharded engines) and save; the engine is named first and checked."""
    from genforget.adapters import save_model
    from genforget.lm.checkpoint import remove_checkpoints
    from genforget.lm.distributed import (
        EngineMismatch,
        check_engine,
        describe_engine,
        engine_line,
        gathered_state_dict,
    )
    from genforget.lm.trainer import unlearn_lm

    accelerator.print(engine_line(describe_engine(accelerator)))
    try:
        check_engine(describe_engine(accelerator), require=args.require_engine)
    except EngineMismatch as e:
        accelerator.print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    engine: dict = {}
    try:
        history: list[dict] = []
        # Checkpoints are deleted below, once the output is saved, not when training ends.
        run_cfg = dataclasses.replace(cfg, keep_checkpoints=True)
        model = unlearn_lm(
            model,
            tokenizer,
            forget,
            retain,
            run_cfg,
            accelerator,
            calibration=calibration,
            history=history,
            engine=engine,
        )
    except (
        ValueError
    ) as e:  # genforget's own checks (e.g. tokenizer/model mismatch); torch's keep their traceback
        if not raised_here(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    # FSDP / DeepSpeed: every process takes part in gathering the full weights (adapter included).
    state_dict = gathered_state_dict(accelerator)
    if accelerator.is_main_process:
        # Written into a hidden sibling and renamed into place: a kill leaves `out` absent or as it was.
        with atomic_dir(out, args.overwrite) as tmp:
            mode = save_model(model, tokenizer, tmp, args.save_mode, state_dict=state_dict)
            _write_record(
                tmp, args, cfg, mode, accelerator, forget, retain, seconds, history, resumed, engine or None
            )
        if not cfg.keep_checkpoints:  # partially-unlearned weights still hold the forget set
            remove_checkpoints(cfg.checkpoint_dir or None)
        print(f"saved {mode} model to {out} ({seconds:.1f}s, {accelerator.num_processes} process(es))")
    accelerator.wait_for_everyone()
    return 0


def _write_record(
    tmp: Path,
    args,
    cfg,
    mode: str,
    accelerator,
    forget,
    retain,
    seconds: float,
    history: list[dict],
    resumed: Path | None = None,
    engine: dict | None = None,
) -> None:
    """``genforget_run.json``: config, counts and a hash of the forget set (never its content)."""
    from genforget.lm.distributed import describe_engine

    record = {
        "method": cfg.method,
        "config": dataclasses.asdict(cfg),
        "model": args.model_name_or_path,
        "saved_as": mode,
        "world_size": accelerator.num_processes,
        # What ran: distributed type, sharding / ZeRO stage, precision, share held per process.
        "engine": engine or describe_engine(accelerator),
        "forget_examples": len(forget),
        "forget_sha256": fingerprint(forget),
        "retain_examples": len(retain or []),
        "unlearn_s": seconds,
        "steps": sum(1 for r in history if "loss" in r),
        # Per step, over the global batch (averaged over the processes): compare runs with it.
        "losses": [{k: r.get(k) for k in ("step", "loss", "forget_nll")} for r in history if "loss" in r],
        # The divergence guard's trip (step, restored step, retain NLLs), or null: numbers only.
        "divergence": next((r for r in history if r.get("diverged")), None),
        # The checkpoint this run continued from (its name holds only the step), or null.
        "resumed_from": resumed.name if resumed else None,
    }
    (tmp / "genforget_run.json").write_text(json.dumps(record, indent=2) + "\n")
