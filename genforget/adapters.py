"""LoRA as a switch on every method: wrap, reference scores with the adapter off, save.

peft is imported only when an adapter is made or met: it pulls in bitsandbytes and takes seconds
to import, which ``import genforget`` must not pay when LoRA is off.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from genforget.config import UnlearnConfig

if TYPE_CHECKING:
    from peft import PeftModel


def is_peft_model(model: object) -> bool:
    """Whether ``model`` is a ``PeftModel``, without importing peft (none exists before it is)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def add_lora(model: torch.nn.Module, config: UnlearnConfig) -> PeftModel:
    """Wrap ``model`` with a fresh LoRA adapter; the base weights are frozen by peft."""
    from peft import LoraConfig, get_peft_model

    if is_peft_model(model):
        return model
    names = [name for name, _ in model.named_modules()]
    # A target is a module-name suffix ("q_proj", or "to_out.0" for diffusers attention).
    targets = [t for t in config.lora_target_modules if any(n == t or n.endswith("." + t) for n in names)]
    if not targets:
        present = {n.rsplit(".", 1)[-1] for n in names}
        raise ValueError(
            f"lora_target_modules {config.lora_target_modules} match no module of this model; "
            f"some of its module names: {sorted(present)[:12]}"
        )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
    )
    return get_peft_model(model, lora)


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module) -> Iterator[None]:
    """The frozen reference: the same model with its adapter switched off (no second copy)."""
    if not is_peft_model(model):
        raise TypeError("reference_mode needs a PeftModel; full fine-tuning uses cached reference log-probs")
    with model.disable_adapter(), torch.no_grad():
        yield


def resolve_save_mode(save_mode: str, is_peft: bool) -> str:
    """``full`` or ``adapter`` for a requested ``auto``/``full``/``adapter`` (LM and diffusion)."""
    if save_mode not in ("auto", "full", "adapter"):
        raise ValueError(f"save_mode must be 'auto', 'full' or 'adapter' (got {save_mode!r})")
    if save_mode == "adapter" and not is_peft:
        raise ValueError("save_mode='adapter' needs use_lora=true; a full fine-tune has no adapter to save")
    return save_mode if save_mode != "auto" else ("adapter" if is_peft else "full")


def save_model(
    model: torch.nn.Module,
    tokenizer,
    output_dir: str | Path,
    save_mode: str = "auto",
    state_dict: dict | None = None,
) -> str:
    """Save as a PEFT adapter dir (``adapter``), a merged full model dir (``full``), or by type
    (``auto``: adapter for LoRA models). Returns the mode used.

    ``state_dict``: the full weights gathered by ``accelerator.get_state_dict`` when the model is
    sharded (FSDP, DeepSpeed ZeRO-3), where the module's own tensors are only this rank's shard;
    for a LoRA model the adapter is taken from it (and merged from it for ``full``). Empty
    (shape ``[0]``: ZeRO-3 partitions) or ``DTensor`` (FSDP2 shards) tensors mean the weights
    were not gathered: a ``RuntimeError`` is raised before anything is written."""
    output_dir = Path(output_dir)
    is_peft = is_peft_model(model)
    mode = resolve_save_mode(save_mode, is_peft)
    if mode == "full" and is_peft:
        model = merged_copy(model, state_dict) if state_dict is not None else model.merge_and_unload()
        state_dict = None
    if mode == "adapter":
        from peft import get_peft_model_state_dict

        check_gathered(get_peft_model_state_dict(model, state_dict=state_dict), "adapter")
    else:
        check_gathered(state_dict if state_dict is not None else model.state_dict(), "model")
    model.save_pretrained(output_dir, **({"state_dict": state_dict} if state_dict is not None else {}))
    tokenizer.save_pretrained(output_dir)
    return mode


def check_gathered(state_dict: dict, what: str) -> None:
    """Refuse to save shards: an empty tensor (a ZeRO-3 partition outside a gather) or a
    ``DTensor`` (an FSDP2 shard) means the weights were not gathered from the processes."""
    from torch.distributed.tensor import DTensor

    bad = [
        k for k, v in state_dict.items() if torch.is_tensor(v) and (v.numel() == 0 or isinstance(v, DTensor))
    ]
    if not state_dict or bad:
        detail = (
            f"{len(bad)} of {len(state_dict)} tensors are shards, e.g. {bad[0]}" if bad else "it is empty"
        )
        raise RuntimeError(
            f"refusing to save the {what}: {detail}; the weights were not gathered from the FSDP / DeepSpeed "
            "processes (pass state_dict=accelerator.get_state_dict(prepared_model))"
        )


def merged_copy(model: PeftModel, state_dict: dict) -> torch.nn.Module:
    """A plain CPU copy of the LoRA ``model`` holding ``state_dict`` (gathered from shards), with
    its adapter merged: the sharded model itself cannot be merged in place. The copy is built
    from the model's config (its buffers and weight ties as at load) and filled from the dict."""
    import copy

    from peft import get_peft_model

    base = model.get_base_model()
    # FSDP2 subclasses each module it shards (FSDP<Class>); build the model's own class.
    cls = next(c for c in type(base).__mro__ if not c.__name__.startswith("FSDP"))
    dtype = next((v.dtype for v in state_dict.values() if torch.is_floating_point(v)), torch.float32)
    fresh = get_peft_model(cls(base.config).to(dtype), copy.deepcopy(model.peft_config[model.active_adapter]))
    own = {n for n, _ in fresh.named_parameters()}  # tied aliases (lm_head) share a parameter
    missing = [k for k in fresh.load_state_dict(state_dict, strict=False).missing_keys if k in own]
    if missing:
        raise RuntimeError(f"the gathered state dict lacks {missing[:3]}: cannot merge the adapter")
    return fresh.merge_and_unload()
