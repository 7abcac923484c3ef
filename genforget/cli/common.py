"""Helpers every ``genforget`` verb shares: output-dir checks and data fingerprints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from genforget.config import UsageError
from genforget.data.loaders import fingerprint  # noqa: F401  (re-exported for the verbs)
from genforget.io import check_output_dir  # noqa: F401  (re-exported for the verbs)


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


@dataclass
class OutputArgs:
    """Where a verb saves its result; an existing non-empty dir is refused unless ``overwrite``."""

    output_dir: str = field(default="", metadata={"help": "new (or empty) dir for the result"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})


@dataclass
class ChatTemplateArgs:
    """A chat template for data in chat form, for the verbs that tokenize chats."""

    chat_template: str = field(
        default="",
        metadata={
            "help": "Jinja chat template file for chat data ('messages'); default: the tokenizer's own "
            "(unlearn saves the one used with the output model)"
        },
    )


@dataclass
class ThreadArgs:
    """Torch's CPU thread count for the run."""

    num_threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = leave as is)"})

    def set_threads(self) -> None:
        """Apply ``num_threads`` (0 leaves torch's own choice)."""
        import torch

        if self.num_threads:
            torch.set_num_threads(self.num_threads)


@dataclass
class QuantArgs:
    """A 4-bit base for QLoRA (transformers' ``BitsAndBytesConfig`` options; genforget.lm.quant)."""

    load_in_4bit: bool = field(
        default=False,
        metadata={"help": "load the model in 4 bits (bitsandbytes) and train a LoRA adapter on it (QLoRA)"},
    )
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "4-bit data type: nf4 or fp4"})
    bnb_4bit_compute_dtype: str = field(
        default="auto",
        metadata={
            "help": "4-bit matmul dtype: auto (bfloat16 on a GPU that has it, else float32), "
            "float32, bfloat16 or float16"
        },
    )
    bnb_4bit_use_double_quant: bool = field(
        default=True, metadata={"help": "also quantise the quantisation constants (QLoRA's double quant)"}
    )

    def quant_kwargs(self) -> dict:
        """The :func:`genforget.load_model` keywords of these options (named as its parameters)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(QuantArgs)}


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
