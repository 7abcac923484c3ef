"""Helpers every ``genforget`` verb shares: output-dir checks and data fingerprints."""

from __future__ import annotations

from pathlib import Path

from genforget.config import UsageError
from genforget.data.loaders import fingerprint  # noqa: F401  (re-exported for the verbs)
from genforget.io import check_output_dir  # noqa: F401  (re-exported for the verbs)


def apply_chat_template_file(tokenizer, path: str) -> str | None:
    """Set ``tokenizer.chat_template`` from ``--chat_template FILE`` (saved with the model, so the
    chats are read the same way later); returns the template's SHA-256 for the run record."""
    import hashlib

    from genforget.lm.chat import load_chat_template

    if not path:
        return None
    try:
        template = load_chat_template(path)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from e
    tokenizer.chat_template = template
    return hashlib.sha256(template.encode()).hexdigest()


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
