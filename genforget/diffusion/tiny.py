"""Tiny Stable Diffusion and SDXL pipelines built from configs (no download), in the spirit of
diffusers' own ``get_dummy_components``: for tests, demos and benchmarks on a CPU.

The components are the real classes (``UNet2DConditionModel``, ``AutoencoderKL``,
``CLIPTextModel`` / ``CLIPTextModelWithProjection``, ``CLIPTokenizer``, ``EulerDiscreteScheduler``),
only small, so a pipeline saves and loads with ``save_pretrained`` / ``DiffusionPipeline.from_pretrained``
exactly as a real one does. Untrained: see :mod:`genforget.diffusion.t2i_train` to train one.
"""

from __future__ import annotations

import string
from typing import Any

import torch

# Whole-word tokens of the tiny tokenizer: the shapes captions' words and the built-in prompts to
# keep. A word gets one token (as in CLIP's real vocabulary), so prompts differ by whole
# embeddings and a tiny UNet learns them in a few hundred steps; other words fall back to letters.
TINY_WORDS = (
    "photo", "of", "an", "red", "blue", "green", "yellow", "magenta", "cyan", "orange", "white",
    "square", "circle", "triangle", "cross", "ring", "diamond", "person", "dog", "cat", "house",
    "car", "tree", "food", "on", "plate", "landscape", "with", "mountains", "city", "street", "painting",
)  # fmt: skip


def _bpe(pieces: list[str], merges: list[tuple[str, str]]) -> list[str]:
    """CLIP's BPE on one word: merge the best-ranked adjacent pair until none is a merge."""
    rank = {m: i for i, m in enumerate(merges)}
    pieces = list(pieces)
    while len(pieces) > 1:
        pairs = [
            (rank.get((a, b), len(rank)), i)
            for i, (a, b) in enumerate(zip(pieces[:-1], pieces[1:], strict=True))
        ]
        best, i = min(pairs)
        if best == len(rank):
            break
        pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
    return pieces


def tiny_clip_tokenizer(model_max_length: int = 40, words: tuple[str, ...] = TINY_WORDS) -> Any:
    """A real CLIP (byte-level BPE) tokenizer over letters and digits plus merges that make each
    of ``words`` one token: no vocabulary file to download, and it saves into / loads from a
    pipeline dir like the real one."""
    from transformers import CLIPTokenizer

    chars = string.ascii_lowercase + string.digits
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(chars)})
    merges: list[tuple[str, str]] = []
    for w in words:
        # Merge until the word is one token under the merges so far, appending (lowest priority)
        # what it still needs; earlier words keep their tokens, since their own merges outrank these.
        pieces = _bpe([*w[:-1], w[-1] + "</w>"], merges)
        while len(pieces) > 1:
            merges.append((pieces[0], pieces[1]))
            vocab.setdefault(pieces[0] + pieces[1], len(vocab))
            pieces = _bpe(pieces, merges)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def tiny_clip_text_encoder(
    vocab_size: int, seed: int = 0, hidden_size: int = 32, max_positions: int = 40, projection_dim: int = 0
) -> Any:
    """A 2-layer CLIP text encoder; ``projection_dim > 0`` gives the ``CLIPTextModelWithProjection``
    that SDXL's second encoder is (its pooled, projected output conditions the UNet)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_positions,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=1,
        projection_dim=projection_dim or hidden_size,
    )
    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(config) if projection_dim else CLIPTextModel(config)


def tiny_vae(image_size: int = 32, seed: int = 0) -> Any:
    """An ``AutoencoderKL`` with 3 blocks (latents 4 x image_size/4 x image_size/4, as SD's
    factor-8 VAE but smaller); train it with :func:`genforget.diffusion.t2i_train.train_vae`."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=image_size,
    )


def tiny_scheduler(prediction_type: str = "epsilon") -> Any:
    """Stable Diffusion's noise schedule (scaled-linear betas 0.00085..0.012) with the Euler
    sampler, as SD 2.x pipelines ship; ``prediction_type`` epsilon (SD 1.x) or v_prediction (SD 2.x)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        timestep_spacing="leading",
        steps_offset=1,
    )


def tiny_unet(
    sample_size: int = 8,
    cross_attention_dim: int = 32,
    seed: int = 0,
    block_out_channels: tuple[int, ...] = (32, 64),
    sdxl_projection_dim: int = 0,
) -> Any:
    """A ``UNet2DConditionModel`` (two resolutions); ``sdxl_projection_dim > 0``
    adds SDXL's ``text_time`` conditioning (pooled text embedding + 6 size/crop ids)."""
    from diffusers import UNet2DConditionModel

    extra: dict[str, Any] = {}
    if sdxl_projection_dim:
        extra = dict(
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + sdxl_projection_dim,
        )
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=block_out_channels,
        layers_per_block=1,
        # Cross-attention at the coarse resolution only (as diffusers' SDXL test UNet): a third of
        # the step time of attention at both, and enough for a prompt to steer the image.
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=8,
        **extra,
    )


def build_tiny_sd_pipeline(
    seed: int = 0, image_size: int = 32, prediction_type: str = "epsilon", vae: Any = None
) -> Any:
    """A ``StableDiffusionPipeline`` of tiny components (UNet latents ``image_size / 4``), no
    safety checker. ``vae``: a trained tiny VAE to reuse (else a fresh one)."""
    from diffusers import StableDiffusionPipeline

    tokenizer = tiny_clip_tokenizer()
    return StableDiffusionPipeline(
        vae=vae if vae is not None else tiny_vae(image_size, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed),
        tokenizer=tokenizer,
        unet=tiny_unet(image_size // 4, 32, seed),
        scheduler=tiny_scheduler(prediction_type),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_sdxl_pipeline(
    seed: int = 0, image_size: int = 32, prediction_type: str = "epsilon", vae: Any = None
) -> Any:
    """A ``StableDiffusionXLPipeline`` of tiny components: two CLIP text encoders (the second with
    a projection, whose pooled output and the size/crop ``add_time_ids`` condition the UNet)."""
    from diffusers import StableDiffusionXLPipeline

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_clip_tokenizer()
    return StableDiffusionXLPipeline(
        vae=vae if vae is not None else tiny_vae(image_size, seed),
        text_encoder=tiny_clip_text_encoder(len(tokenizer), seed),
        text_encoder_2=tiny_clip_text_encoder(len(tokenizer_2), seed + 1, projection_dim=32),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=tiny_unet(image_size // 4, 64, seed, sdxl_projection_dim=32),
        scheduler=tiny_scheduler(prediction_type),
        add_watermarker=False,
    )
