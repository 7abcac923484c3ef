"""Quantisation audit: a bitsandbytes 8-bit or 4-bit (NF4) copy of a model.

Unlearning often moves weights by less than one quantisation step, so rounding them back onto
the int8 / NF4 grid can bring the forgotten data back (Zhang et al. 2024, "Does your LLM truly
unlearn?"). The copy is made through ``save_pretrained`` + ``from_pretrained(quantization_config=)``:
that path also quantises on the CPU (checked with bitsandbytes 0.50 + transformers 5.24: the
layers become ``Linear8bitLt`` / ``Linear4bit``), and it skips the output head and the
embeddings as a real 8/4-bit deployment does.
"""

from __future__ import annotations

import copy
import logging
import tempfile

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig


class _DropInt8CastNotice(logging.Filter):
    """Drops bitsandbytes' "inputs will be cast ... to float16" notice: LLM.int8() always runs
    its matmuls in fp16, and on a float32 model the notice is logged once per layer per forward
    (thousands of lines per evaluation). Every other bitsandbytes message still gets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("MatMul8bitLt: inputs will be cast")


def _quiet_int8_cast_notice() -> None:
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _DropInt8CastNotice) for f in logger.filters):
        logger.addFilter(_DropInt8CastNotice())


def _require_bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ImportError("the quantisation audit needs bitsandbytes: pip install genforget[quant]") from e


def is_peft(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a ``PeftModel`` (False when peft is not installed or not imported)."""
    from genforget.adapters import is_peft_model

    return is_peft_model(model)


def merged_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` with any LoRA adapter merged into the base weights.

    Merging a copy (never ``model``): ``merge_and_unload`` rewrites the base layers in place.
    """
    clone = copy.deepcopy(model)
    return clone.merge_and_unload() if is_peft(clone) else clone


def quant_config(bits: int, dtype: torch.dtype) -> BitsAndBytesConfig:
    """8-bit LLM.int8() (outlier features kept in 16 bits, as deployed) or 4-bit NF4.

    4-bit matmuls run in ``dtype`` (the model's own precision), so the only difference from the
    float model is the rounding of the weights.
    """
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    raise ValueError(f"bits must be 8 or 4 (got {bits})")


def quantize_copy(model: torch.nn.Module, bits: int) -> torch.nn.Module:
    """A new model whose Linear layers are bitsandbytes 8-bit (``bits=8``) or 4-bit NF4 (``bits=4``).

    ``model`` (a plain ``PreTrainedModel`` or a ``PeftModel``, whose adapter is merged first) is
    left untouched. The copy sits on ``model``'s device and is in eval mode.
    """
    param = next(model.parameters())
    dtype = param.dtype if param.dtype.is_floating_point else torch.float32
    config = quant_config(bits, dtype)
    _require_bitsandbytes()
    # A PeftModel's save_pretrained would write only the adapter: merge (a copy) first.
    base = merged_copy(model) if is_peft(model) else model
    if not hasattr(base, "save_pretrained"):
        raise TypeError(f"quantize_copy needs a Hugging Face PreTrainedModel, got {type(base).__name__}")
    with tempfile.TemporaryDirectory(prefix="genforget-quant-") as tmp:
        # save_pretrained only reads the weights; the round trip through safetensors is what lets
        # from_pretrained apply the quantisation config (it quantises while loading).
        base.save_pretrained(tmp)
        quantized = AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=config, dtype=dtype, device_map={"": str(param.device)}
        )
    if bits == 8:
        _quiet_int8_cast_notice()
    quantized.eval()
    return quantized
