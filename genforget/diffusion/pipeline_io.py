"""Saving an unlearned Stable Diffusion / SDXL pipeline the way diffusers loads it, and loading it back.

Two layouts, chosen by ``save_mode`` (:func:`genforget.adapters.resolve_save_mode`):

- ``full``: a complete pipeline dir, ``DiffusionPipeline.from_pretrained(out)`` loads and generates
  from it. Only ``unet/`` is written anew (a LoRA merged into it); every other component
  (``model_index.json``, the scheduler, text encoders, tokenizers, VAE, safety checker ...) is
  *copied* byte for byte from the source dir — not referenced — so the dir stands alone, can be
  moved or pushed to the Hub, and keeps working when the base is deleted or changes (the Hub's
  convention: a model repo holds every file it needs). A LoRA run also writes its adapter to
  ``out/lora/`` (attach that to the *base* pipeline, never to this merged one).
- ``adapter`` (the default for LoRA runs): a diffusers-format LoRA, ``pytorch_lora_weights.safetensors``
  written by the pipeline class's own ``save_lora_weights`` from the PEFT state dict converted with
  ``convert_state_dict_to_diffusers`` (as diffusers' ``train_text_to_image_lora.py`` does), with
  the adapter's ``LoraConfig`` as metadata so ``lora_alpha`` survives; ``pipe.load_lora_weights(out)``
  attaches it to the base pipeline. No ``model_index.json``: loading it as a pipeline fails
  loudly instead of silently giving the base model back.
"""

from __future__ import annotations

import enum
import json
import shutil
from pathlib import Path
from typing import Any

from genforget.adapters import is_peft_model, resolve_save_mode
from genforget.diffusion.pipeline import TextToImage, load_pipeline, pipeline_class_name

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
RUN_RECORD = "genforget_run.json"


def lora_layers(unet: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state dict, metadata)`` of a PEFT-wrapped UNet's LoRA in diffusers' format: keys as
    ``down_blocks....to_q.lora.down.weight``, metadata the ``LoraConfig`` as JSON-able values."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    sd = get_peft_model_state_dict(unet)
    sd = {k.removeprefix("base_model.model."): v.detach().cpu().contiguous() for k, v in sd.items()}
    if not sd:
        raise ValueError("the UNet has no LoRA weights to save")
    meta = {}
    for k, v in unet.peft_config["default"].to_dict().items():
        if isinstance(v, set):
            v = sorted(v)
        elif isinstance(v, enum.Enum):
            v = v.value
        meta[k] = v
    return convert_state_dict_to_diffusers(sd), meta


def save_lora(pipeline_cls: Any, unet: Any, out: str | Path) -> Path:
    """``out/pytorch_lora_weights.safetensors`` through ``pipeline_cls.save_lora_weights``."""
    sd, meta = lora_layers(unet)
    pipeline_cls.save_lora_weights(str(out), unet_lora_layers=sd, unet_lora_adapter_metadata=meta)
    return Path(out) / LORA_WEIGHT_NAME


def copy_components(source: Path, out: Path, skip: tuple[str, ...] = ("unet",)) -> list[str]:
    """Copy ``model_index.json`` and the component folders it names (not ``skip``) from the
    source pipeline dir; other files of the source (a README, single-file checkpoints) stay
    behind. Returns the copied component names."""
    index = json.loads((source / "model_index.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "model_index.json", out / "model_index.json")
    copied = []
    for name, value in index.items():
        if name.startswith("_") or name in skip or not isinstance(value, list) or value[0] is None:
            continue
        if (source / name).is_dir():  # symlinks of a hub cache snapshot are followed: real files
            shutil.copytree(source / name, out / name, dirs_exist_ok=True)
            copied.append(name)
    return copied


def save_unlearned_pipeline(model: TextToImage, unet: Any, out: str | Path, save_mode: str = "auto") -> str:
    """Save ``unet`` (the unlearned UNet, plain or PEFT-wrapped) as a pipeline in ``out`` (see the
    module docstring for the layouts). Returns the mode used (``full`` or ``adapter``)."""
    out = Path(out)
    is_peft = is_peft_model(unet)
    mode = resolve_save_mode(save_mode, is_peft)
    pipeline_cls = type(model.pipe)
    if mode == "adapter":
        save_lora(pipeline_cls, unet, out)
        return mode
    if is_peft:
        save_lora(pipeline_cls, unet, out / "lora")
        unet = unet.merge_and_unload()
    if model.source is not None:
        copy_components(model.source, out)
    else:  # an in-memory pipeline: its components as they are, then the new UNet over its own
        model.pipe.save_pretrained(str(out), safe_serialization=True)
        shutil.rmtree(out / "unet")
    unet.save_pretrained(out / "unet", safe_serialization=True)
    return mode


def load_unlearned(path: str | Path, base: str | None = None, allow_pickle: bool = False) -> TextToImage:
    """What :func:`save_unlearned_pipeline` wrote, ready to generate: a full pipeline dir as it is,
    or a LoRA dir attached to its base (``base``, else the base recorded in ``genforget_run.json``)."""
    path = Path(path)
    if pipeline_class_name(path) is not None:
        return load_pipeline(path, allow_pickle)
    if not (path / LORA_WEIGHT_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: neither a pipeline dir (model_index.json) nor a LoRA ({LORA_WEIGHT_NAME})"
        )
    if base is None:
        record = path / RUN_RECORD
        if not record.is_file():
            raise ValueError(
                f"{path} is a LoRA without {RUN_RECORD}; pass base= the pipeline it was trained on"
            )
        base = json.loads(record.read_text())["model"]
    model = load_pipeline(base, allow_pickle)
    model.pipe.load_lora_weights(str(path))
    return model
