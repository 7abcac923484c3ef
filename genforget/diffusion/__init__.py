"""Diffusion unlearning: the same methods as for LMs, on diffusers UNets.

Class-conditional path: ``UNet2DModel`` with a null class for classifier-free guidance +
``DDPMScheduler`` (the embedded digits benchmark). Text-to-image path: a Stable Diffusion 1.x/2.x
or SDXL pipeline dir or hub id, erasing a concept prompt while anchoring the prompts to keep, trained
and sampled with the pipeline's own scheduler and prediction type, saved as a pipeline diffusers
loads or as a diffusers-format LoRA (:func:`erase_concept`, :func:`save_erased`). See
:func:`genforget.diffusion.trainer.unlearn_diffusion` for the loop both share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genforget._lazy import attach

# module -> the public names it defines. Imported on first use (PEP 562, as genforget/__init__.py
# does), so that importing a light submodule (the shapes and works tables the demos' --help reads)
# does not load diffusers and every model class first.
_LAZY = {
    "genforget.diffusion.data": [
        "DiffusionTask",
        "class_task",
        "concept_task",
        "load_digits_images",
        "pipeline_task",
    ],
    "genforget.diffusion.erase": ["erase_concept", "save_erased"],
    "genforget.diffusion.models": [
        "build_class_unet",
        "build_scheduler",
        "load_class_model",
        "save_class_model",
    ],
    "genforget.diffusion.pipeline": ["TextToImage", "load_pipeline"],
    "genforget.diffusion.pipeline_io": ["load_unlearned", "save_unlearned_pipeline"],
    "genforget.diffusion.scoring": ["denoising_scores", "predict_noise"],
    "genforget.diffusion.trainer": ["unlearn_diffusion"],
}

if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from genforget.diffusion.data import (  # noqa: F401
        DiffusionTask,
        class_task,
        concept_task,
        load_digits_images,
        pipeline_task,
    )
    from genforget.diffusion.erase import erase_concept, save_erased  # noqa: F401
    from genforget.diffusion.models import (  # noqa: F401
        build_class_unet,
        build_scheduler,
        load_class_model,
        save_class_model,
    )
    from genforget.diffusion.pipeline import TextToImage, load_pipeline  # noqa: F401
    from genforget.diffusion.pipeline_io import load_unlearned, save_unlearned_pipeline  # noqa: F401
    from genforget.diffusion.scoring import denoising_scores, predict_noise  # noqa: F401
    from genforget.diffusion.trainer import unlearn_diffusion  # noqa: F401

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
