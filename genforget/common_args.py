"""Field sets that several entry points share (the verbs and the deletion-request pipeline): each is declared once and mixed into their argument dataclasses, so a flag means the same
everywhere and its ``--help`` and YAML key cannot drift apart between verbs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


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
            "help": "Jinja chat template file for chat data ('messages'); default: the model's own. A verb "
            "that saves a model (unlearn, forget) saves the template with it"
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
