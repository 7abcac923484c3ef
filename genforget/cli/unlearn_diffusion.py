"""``recipes/unlearn_diffusion.py``: load a diffusion model, erase a class or a concept, save.

Kept in the library so it is tested in-process; usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from genforget.cli.args import parse_config
from genforget.cli.common import check_accelerate_env, check_output_dir
from genforget.common_args import OutputArgs, ThreadArgs, arg
from genforget.config import UnlearnConfig, UsageError
from genforget.diffusion.data import DiffusionConfig
from genforget.io import atomic_dir, check_safe_weights


@dataclass
class DiffusionScriptArgs(ThreadArgs, OutputArgs):
    """What to load, what to erase and where to save, for ``recipes/unlearn_diffusion.py``."""

    model_name_or_path: str = arg(
        "",
        "class-model dir (unet/ + scheduler/), or a Stable Diffusion 1.x/2.x / SDXL pipeline "
        "dir or hub id (from the local cache)",
    )
    allow_pickle: bool = arg(
        False, "also load pickled weights (diffusion_pytorch_model.bin ...): they can run code"
    )
    save_mode: str = arg(
        "auto",
        "auto | full (a pipeline dir / unet/ + scheduler/; LoRA merged) | adapter (LoRA: "
        "pytorch_lora_weights.safetensors for pipe.load_lora_weights; class models: a PEFT dir)",
    )
    erase_class: int = arg(-1, "class-conditional model: the class id to erase")
    forget_data: str = arg(
        "",
        "class path: 'digits' (sklearn; the default) or an .npz with images [N,C,H,W] in [-1,1] and labels; "
        "pipeline: a dir of images of the concept (.png/.jpg; default: the model's own samples)",
    )
    concept: str = arg("", "text-to-image pipeline: the prompt to erase")
    keep_prompts: list[str] = arg(
        factory=list,
        help="pipeline: prompts whose generations must not change (the anchor term); empty: the "
        "built-in generic list (see builtin_keep_prompts)",
    )
    builtin_keep_prompts: bool = arg(
        True, "pipeline, no keep_prompts: anchor the built-in list (false: only the empty prompt)"
    )
    other_prompts: list[str] = arg(
        factory=list, help="pipeline, salun: prompts to relabel to (default: the keep prompts)"
    )


def _class_data(spec: str):
    import numpy as np
    import torch

    from genforget.diffusion.data import load_digits_images

    if spec in ("", "digits"):
        return load_digits_images()
    path = Path(spec)
    if path.suffix != ".npz" or not path.is_file():
        raise UsageError(f"forget_data must be 'digits' or an existing .npz file (got {spec!r})")
    d = np.load(path)
    if "images" not in d or "labels" not in d:
        raise UsageError(f"{path}: expected arrays 'images' [N,C,H,W] and 'labels' [N]")
    return torch.tensor(d["images"], dtype=torch.float32), torch.tensor(d["labels"], dtype=torch.long)


def _is_pipeline(spec: str) -> bool:
    """A pipeline dir, or a hub id (``org/name``, not a local path) that only a pipeline can be."""
    from genforget.diffusion.pipeline import pipeline_class_name

    path = Path(spec)
    if path.is_dir():
        return pipeline_class_name(path) is not None
    return spec.count("/") == 1 and not spec.startswith((".", "/")) and not path.exists()


def _forget_images(spec: str, size: int):
    """Images of the concept from a dir of .png/.jpg files, resized to the pipeline's resolution."""
    import numpy as np
    import torch
    from PIL import Image

    path = Path(spec)
    files = sorted(p for p in path.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not path.is_dir() or not files:
        raise UsageError(
            f"forget_data: for a pipeline, a dir of .png/.jpg images of the concept (got {spec!r})"
        )
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((size, size)), dtype=np.float32) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0


def _load_class(args: DiffusionScriptArgs):
    """``(unet, scheduler, task, what)`` of a class-conditional model, from the script args."""
    from genforget.diffusion.data import class_task
    from genforget.diffusion.models import load_class_model, null_class

    path = Path(args.model_name_or_path)
    if not path.is_dir():
        raise UsageError(f"model_name_or_path: directory not found: {path}")
    check_safe_weights(path, args.allow_pickle)
    unet, scheduler = load_class_model(path)
    if args.erase_class < 0:
        raise UsageError("a class-conditional model needs --erase_class <class id>")
    images, labels = _class_data(args.forget_data)
    task = class_task(images, labels, args.erase_class, null_class(unet))
    return (
        unet,
        scheduler,
        task,
        {"erase_class": args.erase_class, "forget_data": args.forget_data or "digits"},
    )


def _erase_pipeline(
    args: DiffusionScriptArgs, cfg: UnlearnConfig, dcfg: DiffusionConfig, out: Path, accelerator
) -> int:
    """The text-to-image path: load the pipeline, erase ``args.concept``, save a pipeline or a LoRA."""
    from genforget.diffusion.erase import erase_concept, save_erased
    from genforget.diffusion.pipeline import load_pipeline

    try:
        if not args.concept.strip():
            raise UsageError("a text-to-image pipeline needs --concept 'the prompt to erase'")
        if args.erase_class >= 0:
            raise UsageError("erase_class is for class-conditional models; a pipeline takes --concept")
        model = load_pipeline(args.model_name_or_path, args.allow_pickle)
        forget = _forget_images(args.forget_data, model.image_size) if args.forget_data else None
        keep = args.keep_prompts or (None if args.builtin_keep_prompts else [])
        fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "method"}
        result = erase_concept(model, args.concept, cfg.method, keep, args.other_prompts or None, forget,
                               dcfg, accelerator, **fields)  # fmt: skip
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if accelerator.is_main_process:
        with atomic_dir(out, args.overwrite) as tmp:  # complete or absent, whatever kills the process
            extra = {"world_size": accelerator.num_processes}
            mode = save_erased(result, tmp, args.save_mode, extra)
        print(f"saved {mode} ({'LoRA' if mode == 'adapter' else 'pipeline'}) to {out} "
              f"({result.record['unlearn_s']:.1f}s, {accelerator.num_processes} process(es))")  # fmt: skip
    accelerator.wait_for_everyone()
    return 0


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
        if cfg.report_to != "none" and not cfg.logging_dir:  # beside the output, as genforget unlearn
            cfg = dataclasses.replace(cfg, logging_dir=f"{out}.logs")
        if args.save_mode not in ("auto", "full", "adapter"):
            raise UsageError(f"save_mode must be auto, full or adapter (got {args.save_mode!r})")
        if args.save_mode == "adapter" and not cfg.use_lora:
            raise UsageError("save_mode adapter needs --use_lora true")
        if cfg.save_every or cfg.resume_from:
            raise UsageError(
                "save_every / resume_from: checkpoint and resume is LM-only (genforget unlearn); drop them"
            )
        if not args.model_name_or_path:
            raise UsageError(
                "model_name_or_path is required (a class-model dir, or a Stable Diffusion / SDXL pipeline "
                "dir or hub id)"
            )
        pipeline = _is_pipeline(args.model_name_or_path)
        if pipeline:
            args.set_threads()
            return _erase_pipeline(args, cfg, dcfg, out, Accelerator(cpu=not torch.cuda.is_available()))
        if args.concept:
            raise UsageError(
                f"--concept needs a text-to-image pipeline dir (model_index.json); {args.model_name_or_path} "
                "is a class-conditional model: use --erase_class"
            )
        unet, scheduler, task, what = _load_class(args)
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.set_threads()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    t0 = time.perf_counter()
    try:
        model = unlearn_diffusion(unet, scheduler, task, cfg, dcfg, accelerator)
    except ValueError as e:
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
    """``genforget_run.json`` of a class-model run: config, what was erased, timing."""
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
