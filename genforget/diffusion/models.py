"""Building, saving and loading the diffusion models of both paths (no downloads in tests).

A class-conditional model dir is ``unet/`` + ``scheduler/`` (diffusers ``save_pretrained``
layout, as in a pipeline dir); a text-conditional one is a ``StableDiffusionPipeline`` dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel, UNet2DModel

# peft targets of diffusers attention (``to_out`` is a ModuleList; its Linear is ``to_out.0``).
DIFFUSION_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_class_unet(
    num_classes: int = 10,
    sample_size: int = 8,
    channels: int = 1,
    block_out_channels: tuple[int, ...] = (32, 64),
    seed: int = 0,
) -> UNet2DModel:
    """A small class-conditional UNet; class id ``num_classes`` is the null class of
    classifier-free guidance (Ho & Salimans 2022), so the embedding has ``num_classes + 1`` rows."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=block_out_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=8,
        num_class_embeds=num_classes + 1,
    )


def build_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The DDPM noise schedule used for training and for the unlearning losses."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear", clip_sample=True)


def null_class(unet: Any) -> int:
    """The null (unconditional) class id of a class-conditional UNet: its last embedding row."""
    n = getattr(unet.config, "num_class_embeds", None)
    if not n:
        raise ValueError(
            "this UNet2DModel has no class embedding (num_class_embeds); it is not class-conditional"
        )
    return int(n) - 1


def save_class_model(unet: UNet2DModel, scheduler: DDPMScheduler, out: str | Path) -> None:
    """Write ``out/unet`` and ``out/scheduler``."""
    out = Path(out)
    unet.save_pretrained(out / "unet")
    scheduler.save_pretrained(out / "scheduler")


def load_class_model(path: str | Path) -> tuple[Any, DDPMScheduler]:
    """Load ``(unet, scheduler)`` from what :func:`save_class_model` wrote (also the UNet of a
    pipeline dir), or from a LoRA adapter dir whose recorded base is one."""
    path = Path(path)
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel

        base = Path(json.loads(adapter.read_text())["base_model_name_or_path"])
        unet, scheduler = load_class_model(base)
        return PeftModel.from_pretrained(unet, str(path)), scheduler
    if not (path / "unet" / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a class-conditional diffusion model dir (expected {path}/unet/config.json "
            f"and {path}/scheduler/; see genforget.diffusion.save_class_model)"
        )
    # The UNet of a pipeline dir may be text-conditional: its config names its class.
    cls_name = json.loads((path / "unet" / "config.json").read_text()).get("_class_name")
    unet_cls = UNet2DConditionModel if cls_name == "UNet2DConditionModel" else UNet2DModel
    return unet_cls.from_pretrained(path / "unet"), DDPMScheduler.from_pretrained(path / "scheduler")


def build_tiny_text_components(seed: int = 0, sample_size: int = 8) -> dict[str, Any]:
    """Tiny ``UNet2DConditionModel`` + ``CLIPTextModel`` + word-level tokenizer from configs,
    in the spirit of diffusers' ``get_dummy_components`` (for tests; no download)."""
    import string

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # A real CLIP (byte-level BPE) tokenizer over single characters: no merges file to download,
    # and it saves into / loads from a StableDiffusionPipeline dir like the real one.
    chars = string.ascii_lowercase + string.digits
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(chars)})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=1,
        )
    )
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    return {
        "unet": unet,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": build_scheduler(),
    }


def load_text_to_image(path: str | Path) -> dict[str, Any]:
    """Components of a ``StableDiffusionPipeline`` dir (UNet, CLIP text encoder, tokenizer and the
    pipeline's own scheduler). For SDXL, the VAE and hub ids use
    :func:`genforget.diffusion.pipeline.load_pipeline`."""
    from genforget.diffusion.pipeline import load_pipeline

    pipe = load_pipeline(path).pipe
    return {
        "unet": pipe.unet,
        "text_encoder": pipe.text_encoder,
        "tokenizer": pipe.tokenizer,
        "scheduler": pipe.scheduler,
    }


@torch.no_grad()
def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: list[str]) -> torch.Tensor:
    """CLIP last hidden states ``[N, L, D]`` of ``prompts`` (the UNet's ``encoder_hidden_states``)."""
    ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0].float()


def save_diffusion_model(
    model: Any, scheduler: Any, out: str | Path, save_mode: str = "auto", base_path: str | Path | None = None
) -> str:
    """Save an unlearned UNet as a class-model dir (``full``: ``unet/`` + ``scheduler/``, LoRA
    merged) or a PEFT adapter dir (``adapter``; ``base_path`` is recorded so
    :func:`load_class_model` can find the base). ``auto``: adapter for LoRA models. Returns the mode."""
    from peft import PeftModel

    from genforget.adapters import resolve_save_mode

    is_peft = isinstance(model, PeftModel)
    mode = resolve_save_mode(save_mode, is_peft)
    out = Path(out)
    if mode == "adapter":
        if base_path is not None:
            model.peft_config["default"].base_model_name_or_path = str(Path(base_path).resolve())
        model.save_pretrained(out)
        scheduler.save_pretrained(out / "scheduler")
        return mode
    unet = model.merge_and_unload() if is_peft else model
    save_class_model(unet, scheduler, out)
    return mode
