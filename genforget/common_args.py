"""Field sets that several entry points share (the verbs and the deletion-request pipeline): each is declared once and mixed into their argument dataclasses, so a flag means the same
everywhere and its ``--help`` and YAML key cannot drift apart between verbs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Any


def arg(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field whose ``help`` is its ``--help`` line and its row in docs/configuration.md.

    ``arg(0.5, "weight of ...")`` puts a field's default and help on one line next to its name;
    ``factory`` stands for ``default_factory`` (lists, dicts); with neither, the field is required.
    """
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class LoadingArgs:
    """How models may be loaded: the safe defaults every verb that loads a model shares."""

    allow_pickle: bool = arg(
        False, "also load pickled weights (pytorch_model.bin ...): they can run code; trusted files only"
    )
    trust_remote_code: bool = arg(False, "run modelling code shipped with a hub model (trusted sources only)")


@dataclass
class OutputArgs:
    """Where a verb saves its result; an existing non-empty dir is refused unless ``overwrite``."""

    output_dir: str = arg("", "new (or empty) dir for the result")
    overwrite: bool = arg(False, "replace a non-empty output_dir")


@dataclass
class ChatTemplateArgs:
    """A chat template for data in chat form, for the verbs that tokenize chats."""

    chat_template: str = arg(
        "",
        "Jinja chat template file for chat data ('messages'); default: the model's own. A verb "
        "that saves a model (unlearn, forget) saves the template with it",
    )


@dataclass
class ThreadArgs:
    """Torch's CPU thread count for the run."""

    num_threads: int = arg(0, "torch CPU threads (0 = leave as is)")

    def set_threads(self) -> None:
        """Apply ``num_threads`` (0 leaves torch's own choice)."""
        import torch

        if self.num_threads:
            torch.set_num_threads(self.num_threads)


@dataclass
class QuantArgs:
    """A 4-bit base for QLoRA (transformers' ``BitsAndBytesConfig`` options; genforget.lm.quant)."""

    load_in_4bit: bool = arg(
        False, "load the model in 4 bits (bitsandbytes) and train a LoRA adapter on it (QLoRA)"
    )
    bnb_4bit_quant_type: str = arg("nf4", "4-bit data type: nf4 or fp4")
    bnb_4bit_compute_dtype: str = arg(
        "auto",
        "4-bit matmul dtype: auto (bfloat16 on a GPU that has it, else float32), "
        "float32, bfloat16 or float16",
    )
    bnb_4bit_use_double_quant: bool = arg(
        True, "also quantise the quantisation constants (QLoRA's double quant)"
    )

    def quant_kwargs(self) -> dict:
        """The :func:`genforget.load_model` keywords of these options (named as its parameters)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(QuantArgs)}
