"""Helpers every ``genforget`` verb shares: output-dir checks and data fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from genforget.config import UsageError
from genforget.data.loaders import fingerprint  # noqa: F401  (re-exported for the verbs)


@dataclass
class LoadingArgs:
    """How models may be loaded: the safe defaults every verb that loads a model shares."""

    allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "also load pickled weights (pytorch_model.bin ...): they can run code; trusted files only"
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "run modelling code shipped with a hub model (trusted sources only)"}
    )


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


def raised_here(e: BaseException) -> bool:
    """Whether ``e`` was raised by genforget's own code (a check of the user's input, reported in
    one line with exit 2) rather than inside torch, accelerate or another library, whose errors
    must keep their type and traceback."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    package = Path(__file__).resolve().parents[1]
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(package)


MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")


def check_accelerate_env() -> None:
    """Misconfigurations of ``accelerate`` that it would accept silently or fail on mid-run."""
    import os

    import torch

    mp = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if mp is not None and mp not in MIXED_PRECISION:
        raise UsageError(
            f"ACCELERATE_MIXED_PRECISION={mp!r} is not one of {', '.join(MIXED_PRECISION)}; "
            "fix it in the environment or in `accelerate config`"
        )
    if mp in ("fp16", "fp8") and not torch.cuda.is_available():
        raise UsageError(
            f"ACCELERATE_MIXED_PRECISION={mp} needs a GPU and none is visible; use bf16 or no on the CPU"
        )
