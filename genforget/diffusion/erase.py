"""Erase a concept from a Stable Diffusion / SDXL pipeline: the Python API behind the recipe and CLI.

    from genforget.diffusion.erase import erase_concept, save_erased
    result = erase_concept("path/to/sd", "a photo of a red square", method="salun", use_lora=True,
                           keep_prompts=["a photo of a blue circle"])
    save_erased(result, "runs/erased")          # a LoRA for pipe.load_lora_weights, or a pipeline dir
    images = result.model.pipe("a photo of a blue circle").images   # the unlearned pipeline, in memory

What was erased is recorded only as SHA-256 hashes (run record and model card), never as text.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genforget.cards import sha256_text, write_model_card
from genforget.config import UnlearnConfig, make_config
from genforget.diffusion.data import DiffusionConfig, default_keep_prompts, pipeline_task
from genforget.diffusion.pipeline import TextToImage, load_pipeline
from genforget.diffusion.pipeline_io import LORA_WEIGHT_NAME, RUN_RECORD, save_unlearned_pipeline
from genforget.diffusion.trainer import unlearn_diffusion


@dataclass
class EraseResult:
    """``model``: the pipeline, its UNet now the unlearned one (LoRA active under ``use_lora``);
    ``unet``: what the trainer returned (a ``PeftModel`` under LoRA); ``record``: what was done,
    hashes and counts only (the run record and model card read it)."""

    model: TextToImage
    unet: Any
    config: UnlearnConfig
    diffusion: DiffusionConfig
    record: dict = field(default_factory=dict)


def erase_concept(
    pipeline: str | Path | TextToImage,
    concept: str,
    method: str = "esd",
    keep_prompts: list[str] | None = None,
    other_prompts: list[str] | None = None,
    forget_images: torch.Tensor | None = None,
    diffusion_config: DiffusionConfig | None = None,
    accelerator: Any = None,
    allow_pickle: bool = False,
    **config: Any,
) -> EraseResult:
    """Erase the prompt ``concept`` from ``pipeline`` (a dir, a cached hub id or a loaded
    :class:`TextToImage`) with ``method`` and any :class:`~genforget.config.UnlearnConfig` field.

    ``keep_prompts``: prompts whose generations must not change (the anchor term; ``None``: the
    built-in generic list and ``diffusion_config.neighbour_prompts`` neighbours of the concept;
    always with the unconditional input). ``other_prompts``: SalUn's
    relabelling targets (default: the keep prompts). ``forget_images``: images of the concept in
    [-1, 1] at the pipeline's resolution (default: the model's own samples of it).
    """
    model = pipeline if isinstance(pipeline, TextToImage) else load_pipeline(pipeline, allow_pickle)
    cfg = make_config(UnlearnConfig, {"method": method, **config})
    dcfg = diffusion_config or DiffusionConfig()
    latents = model.encode_images(forget_images) if forget_images is not None else None
    if keep_prompts is None:
        keep, n_near = default_keep_prompts(model, concept, dcfg.neighbour_prompts, cfg.seed)
        keep_record = {"source": "builtin+neighbours", "count": len(keep), "neighbours": n_near, "sha256": []}
        if dcfg.neighbour_prompts and not n_near:
            print("[genforget] warning: the tokenizer has no whole-word vocabulary; no neighbour prompts "
                  "of the concept are kept, only the built-in list", file=sys.stderr)  # fmt: skip
    else:
        # user prompts may be private: in the record only as hashes
        keep = list(keep_prompts)
        keep_record = {"source": "user", "count": len(keep), "sha256": [sha256_text(p) for p in keep]}
    if getattr(cfg, "anchor_prompt", "") and not other_prompts:  # concept ablation's anchor
        other_prompts = [cfg.anchor_prompt]
    task = pipeline_task(model, concept, keep, other_prompts, latents)
    info: dict = {}
    t0 = time.perf_counter()
    unet = unlearn_diffusion(model.unet, model.scheduler, task, cfg, dcfg, accelerator, info)
    seconds = time.perf_counter() - t0
    model.pipe.unet = unet.get_base_model() if hasattr(unet, "get_base_model") else unet
    record = {
        "method": cfg.method,
        "config": dataclasses.asdict(cfg),
        "diffusion": dataclasses.asdict(dcfg),
        "model": model.name,
        "pipeline_class": type(model.pipe).__name__,
        "prediction_type": getattr(model.scheduler.config, "prediction_type", "epsilon"),
        "scheduler": type(model.scheduler).__name__,
        "concept_sha256": sha256_text(concept),
        "keep_prompts": keep_record,
        "other_prompts_count": len(other_prompts) if other_prompts else len(keep),
        "trained_on": info,
        "unlearn_s": seconds,
    }
    return EraseResult(model, unet, cfg, dcfg, record)


def _usage(mode: str, base: str) -> str:
    if Path(base).exists() or base.startswith((".", "/")):  # a local path is not written into a card
        base = "<the base pipeline dir>"
    if mode == "adapter":
        return (
            "from diffusers import DiffusionPipeline\n"
            f"pipe = DiffusionPipeline.from_pretrained({base!r})\n"
            "pipe.load_lora_weights('<this dir>')   # "
            f"{LORA_WEIGHT_NAME}\n"
        )
    return "from diffusers import DiffusionPipeline\npipe = DiffusionPipeline.from_pretrained('<this dir>')\n"


def save_erased(
    result: EraseResult, out: str | Path, save_mode: str = "auto", extra: dict | None = None
) -> str:
    """Write the unlearned pipeline (or its LoRA), ``genforget_run.json`` and a model card
    ``README.md`` into ``out``. ``extra``: more run-record fields (numbers only). Returns the mode."""
    out = Path(out)
    mode = save_unlearned_pipeline(result.model, result.unet, out, save_mode)
    record = {**result.record, "saved_as": mode, **(extra or {})}
    (out / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    lora = " (LoRA on the UNet attention)" if result.config.use_lora else ""
    write_model_card(
        out,
        title=f"{Path(str(result.model.name)).name}: a concept erased with {result.config.method}{lora}",
        base_model=result.model.name,
        library_name="diffusers",
        tags=["text-to-image", "stable-diffusion", "concept-erasure", result.config.method]
        + (["lora"] if mode == "adapter" else []),
        summary=(
            f"A `{record['pipeline_class']}` whose UNet was made to stop generating one concept, with "
            f"genforget's `{result.config.method}`; the prompts to keep were held by an anchor term. "
            + (
                "This dir is a diffusers-format LoRA for the base pipeline."
                if mode == "adapter"
                else "This dir is a complete pipeline; only `unet/` differs from the base."
            )
        ),  # fmt: skip
        method=result.config.method,
        config={"unlearn": record["config"], "diffusion": record["diffusion"]},
        forgotten={
            "erased concept (SHA-256 of the prompt)": record["concept_sha256"],
            "prompts kept": f"{record['keep_prompts']['count']} ({record['keep_prompts']['source']})",
            "trained on": json.dumps(record["trained_on"], sort_keys=True),
            "prediction type / scheduler": f"{record['prediction_type']} / {record['scheduler']}",
        },
        results={k: v for k, v in (extra or {}).items() if isinstance(v, (int, float, dict))} or None,
        usage=_usage(mode, result.model.name),
    )
    return mode
