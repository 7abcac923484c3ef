"""``recipes/unlearn_diffusion.py``: load a diffusion model, erase a class or a concept, save.

Kept in the library so it is tested in-process; usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from genforget.cli.common import check_accelerate_env, check_output_dir
from genforget.config import UnlearnConfig, UsageError, parse_config
from genforget.diffusion.data import DiffusionConfig
from genforget.io import atomic_dir, check_safe_weights


@dataclass
class DiffusionScriptArgs:
    """What to load, what to erase and where to save, for ``recipes/unlearn_diffusion.py``."""

    model_name_or_path: str = field(
        default="", metadata={"help": "class-model dir (unet/ + scheduler/) or a StableDiffusionPipeline dir"}
    )
    output_dir: str = field(default="", metadata={"help": "new (or empty) dir for the result"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "also load pickled weights (diffusion_pytorch_model.bin ...): they can run code"},
    )
    save_mode: str = field(
        default="auto", metadata={"help": "auto | full (unet/ + scheduler/) | adapter (PEFT)"}
    )
    erase_class: int = field(default=-1, metadata={"help": "class-conditional model: the class id to erase"})
    forget_data: str = field(
        default="digits",
        metadata={
            "help": "class path: 'digits' (sklearn) or an .npz with images [N,C,H,W] in [-1,1] and labels"
        },
    )
    concept: str = field(default="", metadata={"help": "text-conditional model: the prompt to erase"})
    other_prompts: list[str] = field(
        default_factory=list,
        metadata={"help": "text path, salun: prompts to relabel to (default: empty prompt)"},
    )
    num_threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = leave as is)"})


def _class_data(spec: str):
    import numpy as np
    import torch

    from genforget.diffusion.data import load_digits_images

    if spec == "digits":
        return load_digits_images()
    path = Path(spec)
    if path.suffix != ".npz" or not path.is_file():
        raise UsageError(f"forget_data must be 'digits' or an existing .npz file (got {spec!r})")
    d = np.load(path)
    if "images" not in d or "labels" not in d:
        raise UsageError(f"{path}: expected arrays 'images' [N,C,H,W] and 'labels' [N]")
    return torch.tensor(d["images"], dtype=torch.float32), torch.tensor(d["labels"], dtype=torch.long)


def _load(args: DiffusionScriptArgs):
    """``(unet, scheduler, task, what)``: the model and the erasure, from the script args."""
    from genforget.diffusion.data import class_task, concept_task
    from genforget.diffusion.models import load_class_model, load_text_to_image, null_class

    path = Path(args.model_name_or_path)
    if not args.model_name_or_path:
        raise UsageError(
            "model_name_or_path is required (a class-model dir or a StableDiffusionPipeline dir)"
        )
    if not path.is_dir():
        raise UsageError(f"model_name_or_path: directory not found: {path}")
    check_safe_weights(path, args.allow_pickle)
    if (path / "model_index.json").is_file():
        if not args.concept:
            raise UsageError("a text-to-image pipeline needs --concept 'the prompt to erase'")
        c = load_text_to_image(path)
        unet = c["unet"]
        shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        task = concept_task(
            c["tokenizer"], c["text_encoder"], args.concept, shape, args.other_prompts or None
        )
        return (
            unet,
            c["scheduler"],
            task,
            {"concept_sha256": hashlib.sha256(args.concept.encode()).hexdigest()},
        )
    unet, scheduler = load_class_model(path)
    if args.erase_class < 0:
        raise UsageError("a class-conditional model needs --erase_class <class id>")
    images, labels = _class_data(args.forget_data)
    task = class_task(images, labels, args.erase_class, null_class(unet))
    return unet, scheduler, task, {"erase_class": args.erase_class, "forget_data": args.forget_data}


def unlearn_diffusion_main(argv: list[str] | None = None) -> int:
    """Parse, load, erase, save the model and a ``genforget_run.json`` record."""
    import torch
    from accelerate import Accelerator

    from genforget.diffusion.models import save_diffusion_model
    from genforget.diffusion.trainer import unlearn_diffusion

    try:
        args, cfg, dcfg = parse_config((DiffusionScriptArgs, UnlearnConfig, DiffusionConfig), argv)
        out = check_output_dir(args.output_dir, args.overwrite)
        check_accelerate_env()
        if args.save_mode not in ("auto", "full", "adapter"):
            raise UsageError(f"save_mode must be auto, full or adapter (got {args.save_mode!r})")
        if args.save_mode == "adapter" and not cfg.use_lora:
            raise UsageError("save_mode adapter needs --use_lora true")
        if cfg.save_every or cfg.resume_from:
            raise UsageError(
                "save_every / resume_from: checkpoint and resume is LM-only (genforget unlearn); drop them"
            )
        unet, scheduler, task, what = _load(args)
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    t0 = time.perf_counter()
    try:
        model = unlearn_diffusion(unet, scheduler, task, cfg, dcfg, accelerator)
    except ValueError as e:  # e.g. a method that needs images, on a concept with none
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    if accelerator.is_main_process:
        with atomic_dir(out, args.overwrite) as tmp:  # complete or absent, whatever kills the process
            mode = save_diffusion_model(
                model, scheduler, tmp, args.save_mode, base_path=args.model_name_or_path
            )
            _write_record(tmp, args, cfg, dcfg, mode, accelerator, what, seconds)
        print(f"saved {mode} model to {out} ({seconds:.1f}s, {accelerator.num_processes} process(es))")
    accelerator.wait_for_everyone()
    return 0


def _write_record(tmp: Path, args, cfg, dcfg, mode: str, accelerator, what: dict, seconds: float) -> None:
    """``genforget_run.json``: config, what was erased (a concept only as its hash), timing."""
    record = {
        "method": cfg.method,
        "config": dataclasses.asdict(cfg),
        "diffusion": dataclasses.asdict(dcfg),
        "model": args.model_name_or_path,
        "saved_as": mode,
        "world_size": accelerator.num_processes,
        **what,
        "unlearn_s": seconds,
    }
    (tmp / "genforget_run.json").write_text(json.dumps(record, indent=2) + "\n")
