"""``genforget unlearn`` / ``recipes/unlearn_lm.py``: load a causal LM and data, unlearn, save.

Exit codes: 0 the forget set was forgotten; 2 a usage error (nothing written; printed once, by
the main process, when several run); 3 (:data:`genforget.lm.outcome.EXIT_NOT_FORGOTTEN`) the run
ended ``partial`` or ``unchanged``: the model and its run record are saved, the record's
``outcome`` says why, and ``--allow_partial true`` turns this exit into 0.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from genforget.cli.args import parse_config
from genforget.cli.common import (
    apply_chat_template_file,
    check_accelerate_env,
    fail,
    fingerprint,
    raised_here,
)
from genforget.cli.launch import launched, relaunch
from genforget.common_args import ChatTemplateArgs, LoadingArgs, OutputArgs, QuantArgs, ThreadArgs, arg
from genforget.config import UnlearnConfig, UsageError
from genforget.data.pii import PIICorpusArgs
from genforget.io import atomic_dir, check_output_dir
from genforget.lm.outcome import EXIT_NOT_FORGOTTEN


@dataclass
class UnlearnScriptArgs(ThreadArgs, PIICorpusArgs, ChatTemplateArgs, OutputArgs, LoadingArgs, QuantArgs):
    """What to load and where to save, for ``recipes/unlearn_lm.py`` (the built-in corpus's fields
    size ``pii:`` data)."""

    model_name_or_path: str = arg("", "save_pretrained dir or hub id of the model")
    forget_data: str = arg(
        "",
        "JSONL/parquet/CSV file, dataset dir (save_to_disk; <dir>:<split> for a DatasetDict), "
        "hub dataset <name>:<split>, pii:forget, or tofu:<dir>:<split>",
    )
    retain_data: str = arg("", "same forms as forget_data; empty = no retain term")
    calibration_data: str = arg(
        "", "never-seen data like the forget set (pii:calibration): enables calibrated stop"
    )
    save_mode: str = arg("auto", "auto | full | adapter (PEFT dir; needs use_lora)")
    accelerate_config: str = arg(
        "",
        "run under `accelerate launch --config_file FILE` (several processes) with one clean "
        "error and the right exit code when the run fails on a usage error or does not forget",
    )
    allow_partial: bool = arg(
        False,
        "exit 0 even when the outcome is partial or unchanged (default: exit 3; the model and "
        "its run record are saved either way)",
    )
    require_engine: bool = arg(
        False, "fail (exit 2) when the launch config's FSDP/DeepSpeed is not the engine that runs"
    )


def unlearn_main(argv: list[str] | None = None) -> int:
    """``recipes/unlearn_lm.py``: load model and data, unlearn, save, write a run record."""

    from genforget.api import load_model
    from genforget.data.loaders import load_data_spec
    from genforget.lm.distributed import make_accelerator
    from genforget.lm.safeguards.checkpoint import check_resume

    try:
        args, cfg = parse_config((UnlearnScriptArgs, UnlearnConfig), argv)
        if args.accelerate_config and not launched():
            check_output_dir(args.output_dir, args.overwrite)  # before any process starts
            return relaunch("unlearn", sys.argv[1:] if argv is None else argv, args.accelerate_config)
        out = check_output_dir(args.output_dir, args.overwrite)
        check_accelerate_env()
        if (
            cfg.report_to != "none" and not cfg.logging_dir
        ):  # beside the output, which appears only at the end
            cfg = dataclasses.replace(cfg, logging_dir=f"{out}.logs")
        if not args.model_name_or_path:
            raise UsageError("model_name_or_path is required")
        if not args.forget_data:
            raise UsageError(
                "forget_data is required (a JSONL path, a dataset dir, <hub name>:<split>, pii:forget or "
                "tofu:<dir>:<split>)"
            )
        if args.save_mode == "adapter" and not cfg.use_lora:
            raise UsageError("save_mode adapter needs --use_lora true")
        if args.load_in_4bit and not cfg.use_lora:
            raise UsageError(
                "--load_in_4bit trains a LoRA adapter on the 4-bit base (QLoRA): add --use_lora true"
            )
        if args.load_in_4bit and args.save_mode == "full":
            raise UsageError(
                "--load_in_4bit with --save_mode full would merge the adapter into rounded 4-bit weights; "
                "save the adapter (--save_mode adapter or auto) and merge it into the full-precision base"
            )
        if cfg.plain and args.calibration_data:
            raise UsageError("--plain true runs exactly max_steps steps: drop --calibration_data")
        corpus = (args.n_people, args.n_passages, args.forget_frac, args.corpus_seed)
        forget = load_data_spec(args.forget_data, *corpus, name="forget_data")
        retain = load_data_spec(args.retain_data, *corpus, name="retain_data") if args.retain_data else None
        calibration = (
            load_data_spec(args.calibration_data, *corpus, name="calibration_data")
            if args.calibration_data
            else None
        )
        if not forget:
            raise UsageError(f"forget_data {args.forget_data!r} holds no examples")
        resumed = None
        if cfg.save_every or cfg.resume_from:  # next to the output dir, which appears only at the end
            cfg = dataclasses.replace(cfg, checkpoint_dir=cfg.checkpoint_dir or f"{out}.checkpoints")
            resumed = check_resume(cfg, forget, retain, calibration)  # a wrong one: before the model loads
        model, tokenizer = load_model(
            args.model_name_or_path,
            allow_pickle=args.allow_pickle,
            trust_remote_code=args.trust_remote_code,
            **args.quant_kwargs(),
        )
        template_sha = apply_chat_template_file(tokenizer, args.chat_template)
        from genforget.lm.chat import has_chat

        if has_chat([*forget, *(retain or []), *(calibration or [])]) and not tokenizer.chat_template:
            raise UsageError(
                f"the data holds chats ('messages') but {args.model_name_or_path}'s tokenizer has no chat "
                "template; pass --chat_template FILE"
            )
    except (UsageError, ValueError, FileNotFoundError, OSError, ImportError) as e:
        return fail(str(e))  # once: the main process prints it (or hands it to --accelerate_config)
    args.set_threads()
    accelerator = make_accelerator()
    try:
        return _run(
            args, cfg, out, accelerator, model, tokenizer, forget, retain, calibration, resumed, template_sha
        )
    finally:
        accelerator.end_training()  # destroys the process group: no abort at exit


def _run(
    args, cfg, out, accelerator, model, tokenizer, forget, retain, calibration, resumed, template_sha
) -> int:
    """Train, gather (sharded engines) and save; the engine is named first and checked."""
    from genforget.adapters import save_model
    from genforget.lm.distributed import (
        EngineMismatch,
        check_engine,
        describe_engine,
        engine_line,
        gathered_state_dict,
    )
    from genforget.lm.safeguards.checkpoint import remove_checkpoints
    from genforget.lm.trainer import unlearn_lm

    accelerator.print(engine_line(describe_engine(accelerator)))
    try:
        check_engine(describe_engine(accelerator), require=args.require_engine)
    except EngineMismatch as e:
        return fail(str(e), 2, accelerator)
    t0 = time.perf_counter()
    engine: dict = {}
    try:
        history: list[dict] = []
        outcome: dict = {}
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
            outcome=outcome,
            engine=engine,
        )
    except ValueError as e:  # genforget's own checks (e.g. tokenizer/model mismatch, LoRA targets)
        if not raised_here(e):
            raise  # torch's keep their traceback
        return fail(str(e), 2, accelerator)
    seconds = time.perf_counter() - t0
    # FSDP / DeepSpeed: every process takes part in gathering the full weights (adapter included).
    state_dict = gathered_state_dict(accelerator)
    if accelerator.is_main_process:
        # Written into a hidden sibling and renamed into place: a kill leaves `out` absent or as it was.
        with atomic_dir(out, args.overwrite) as tmp:
            card = {
                "config": dataclasses.asdict(cfg),
                "data": {
                    "forget_examples": len(forget),
                    "forget_sha256": fingerprint(forget),
                    "retain_examples": len(retain or []),
                    "retain_sha256": fingerprint(retain) if retain else None,
                },
                "outcome": {k: v for k, v in outcome.items() if k != "lora_targets"} or None,
            }
            mode = save_model(model, tokenizer, tmp, args.save_mode, state_dict=state_dict, card=card)
            _write_record(
                tmp,
                args,
                cfg,
                mode,
                accelerator,
                forget,
                retain,
                seconds,
                history,
                resumed,
                outcome,
                engine or None,
            )
            _add_data_record(tmp, model, tokenizer, template_sha)
        if not cfg.keep_checkpoints:  # partially-unlearned weights still hold the forget set
            remove_checkpoints(cfg.checkpoint_dir or None)
        print(f"saved {mode} model to {out} ({seconds:.1f}s, {accelerator.num_processes} process(es))")
    accelerator.wait_for_everyone()
    if outcome.get("status", "forgotten") != "forgotten" and not args.allow_partial:
        why = (
            f"the unlearning outcome is {outcome['status']}: {outcome['reason']} (model and record saved in "
            f"{out}); pass --allow_partial true to accept it and exit 0"
        )
        return fail(why, EXIT_NOT_FORGOTTEN, accelerator)
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
    outcome: dict | None = None,
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
        # forgotten | partial | unchanged, with forget/retain figures before and after: numbers only.
        "outcome": {k: v for k, v in (outcome or {}).items() if k != "lora_targets"} or None,
        # What LoRA wrapped and by which rule (auto: every linear layer of the decoder blocks), or null.
        "lora_targets": (outcome or {}).get("lora_targets"),
    }
    (tmp / "genforget_run.json").write_text(json.dumps(record, indent=2) + "\n")


def _add_data_record(tmp: Path, model, tokenizer, template_sha: str | None) -> None:
    """How the data met the model, in ``genforget_run.json``: the special tokens the tokenizer
    adds, the pad id used, the chat template's hash and the 4-bit settings."""
    from genforget.lm.quant import quantization_record
    from genforget.lm.specials import tokenization_record

    path = tmp / "genforget_run.json"
    record = json.loads(path.read_text())
    record["tokenization"] = {**tokenization_record(tokenizer), "chat_template_sha256": template_sha}
    record["quantization"] = quantization_record(model)
    path.write_text(json.dumps(record, indent=2) + "\n")
