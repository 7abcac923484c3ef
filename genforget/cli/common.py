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


# Set by `--accelerate_config` (genforget.cli.launch) in the processes it launches: the main
# process writes its expected failure there (usage error, outcome not forgotten) instead of
# printing it, and the launching process prints it once and exits with its code.
EXIT_FILE_ENV = "GENFORGET_EXIT_FILE"


def is_main_rank(accelerator=None) -> bool:
    """The main process of a (possibly multi-process) run; before an ``Accelerator`` exists, read
    from the ``RANK`` torchrun / ``accelerate launch`` set (absent: a single process)."""
    import os

    if accelerator is not None:
        return accelerator.is_main_process
    return os.environ.get("RANK", "0") == "0"


def fail(message: str, code: int = 2, accelerator=None) -> int:
    """Report an expected failure once (main process only) and return its exit code: printed as
    ``error: <message>``, or handed to the launching process (see :data:`EXIT_FILE_ENV`)."""
    import json
    import os
    import sys

    if is_main_rank(accelerator):
        path = os.environ.get(EXIT_FILE_ENV)
        if path:
            Path(path).write_text(json.dumps({"code": code, "message": message}))
        else:
            print(f"error: {message}", file=sys.stderr)
    return code
