"""QLoRA: a 4-bit (bitsandbytes NF4/FP4) base model with a LoRA adapter trained on top.

QLoRA (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs",
arXiv:2305.14314) keeps the base weights in 4 bits and trains only a LoRA adapter in higher
precision, so unlearning a large model fits where a full fine-tune does not.

The CPU trap this module closes: with bitsandbytes >= 0.48, ``Linear4bit.forward`` on a CPU with
AVX512-BF16 repacks its weight *in place* into an inference-only layout the first time it runs in
eval mode without gradients (``bitsandbytes/nn/modules.py``: ``not self.training and
x.requires_grad == False`` -> ``_convert_weight_packed_for_cpu``; the absmax goes to bf16 and a
double-quantised one is expanded). From then on every forward, training ones included, takes the
fused ``gemv_4bit`` path (``autograd/_functions.py``: ``matmul_4bit`` checks
``packing_format_for_cpu`` first), which has no autograd support: a layer with a bias fails on
``result += bias`` ("a view of a leaf Variable that requires grad is being used in an in-place
operation"; Qwen2's q/k/v projections), one without silently computes with the rounded state
(measured on a tiny Mistral: retain extraction 1.00 -> 0.00 with no error). genforget scores
models in eval mode without gradients everywhere (the divergence guard, the calibrated stop,
the cached reference, evaluation), so :func:`keep_4bit_trainable` switches the repack off on
every 4-bit layer of a model it is given (and undoes a repack that already happened), once,
where models enter: :func:`genforget.load_model`, ``unlearn`` and ``evaluate``.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import torch

QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")


def linear4bit_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The bitsandbytes ``Linear4bit`` layers of ``model`` (none when bitsandbytes was never imported)."""
    bnb = sys.modules.get("bitsandbytes")
    if bnb is None:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def is_4bit(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds 4-bit bitsandbytes layers."""
    return bool(getattr(model, "is_loaded_in_4bit", False)) or bool(linear4bit_layers(model))


def keep_4bit_trainable(model: torch.nn.Module, unpack: bool = False) -> int:
    """Switch off bitsandbytes' CPU inference repack on every ``Linear4bit`` of ``model`` (see
    the module docstring); with ``unpack`` (before training), also undo a repack that already
    happened; returns the layers undone.

    The repack only speeds up CPU inference; without it an eval-mode forward dequantises like a
    training one, so scoring a model never changes what training it later computes. Undoing one
    re-quantises the absmax the repack rounded to bf16, so it is done only where training needs
    it: an evaluation leaves an already repacked layer as it is."""
    undone = 0
    for layer in linear4bit_layers(model):
        layer.support_avx512bf16_for_cpu = False
        state = getattr(layer.weight, "quant_state", None)
        if unpack and state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                layer.weight.data, state
            )
            undone += 1
    if undone:
        warnings.warn(
            f"{undone} 4-bit layer(s) had been repacked by bitsandbytes for CPU inference (an eval-mode "
            "forward outside genforget); restored the training layout (absmax rounded to bf16 by that repack)",
            stacklevel=2,
        )
    return undone


def compute_dtype(name: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that has it (the QLoRA paper's), else float32."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"bnb_4bit_compute_dtype must be one of {', '.join(COMPUTE_DTYPES)} (got {name!r})")
    if name == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return getattr(torch, name)


def bnb_4bit_config(quant_type: str = "nf4", dtype: str = "auto", double_quant: bool = True) -> Any:
    """transformers' ``BitsAndBytesConfig`` for a 4-bit base (QLoRA's NF4 + double quantisation
    by default)."""
    from transformers import BitsAndBytesConfig

    if quant_type not in QUANT_TYPES:
        raise ValueError(f"bnb_4bit_quant_type must be nf4 or fp4 (got {quant_type!r})")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ImportError("load_in_4bit needs bitsandbytes: pip install genforget[quant]") from e
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_compute_dtype=compute_dtype(dtype),
        bnb_4bit_use_double_quant=double_quant,
    )


def prepare_4bit_for_training(model: torch.nn.Module, config: Any) -> torch.nn.Module:
    """peft's ``prepare_model_for_kbit_training`` for a 4-bit base (norms and head in float32,
    input gradients on, base frozen) before its LoRA adapter is added; a model without 4-bit
    layers is returned as it is. Training a 4-bit base without LoRA is refused: its weights are
    integer codes that no optimizer can step."""
    if not is_4bit(model):
        return model
    if not config.use_lora:
        raise ValueError(
            "the model is loaded in 4 bits: its weights cannot be trained directly; set use_lora: true "
            "(QLoRA: a LoRA adapter trained on the 4-bit base)"
        )
    from genforget.adapters import is_peft_model

    keep_4bit_trainable(model, unpack=True)
    if is_peft_model(model):  # an adapter already on the 4-bit base: prepared when it was made
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def quantization_record(model: torch.nn.Module) -> dict | None:
    """The 4-bit settings of ``model`` for run records, or None for a model in full precision."""
    qc = getattr(getattr(model, "config", None), "quantization_config", None)
    if not is_4bit(model) or qc is None:
        return None
    d = qc.to_dict() if hasattr(qc, "to_dict") else dict(qc)
    keys = ("load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_compute_dtype", "bnb_4bit_use_double_quant")
    return {k: str(d[k]) if k == "bnb_4bit_compute_dtype" else d[k] for k in keys if k in d}
