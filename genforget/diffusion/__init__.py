"""Diffusion unlearning: the same methods as for LMs, on diffusers UNets.

Class-conditional path: ``UNet2DModel`` with a null class for classifier-free guidance +
``DDPMScheduler`` (the embedded digits benchmark). Text-to-image path: a Stable Diffusion 1.x/2.x
or SDXL pipeline dir or hub id, erasing a concept prompt while anchoring the prompts to keep, trained
and sampled with the pipeline's own scheduler and prediction type, saved as a pipeline diffusers
loads or as a diffusers-format LoRA (:func:`erase_concept`, :func:`save_erased`). See
:func:`genforget.diffusion.trainer.unlearn_diffusion` for the loop both share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genforget._lazy import lazy_attribute

# public name -> module that defines it. Imported on first use (PEP 562, as genforget/__init__.py
# does), so that importing a light submodule (the shapes and works tables the demos' --help reads)
# does not load diffusers and every model class first.
_LAZY = {
    "DiffusionTask": "genforget.diffusion.data",
    "TextToImage": "genforget.diffusion.pipeline",
    "build_class_unet": "genforget.diffusion.models",
    "build_scheduler": "genforget.diffusion.models",
    "class_task": "genforget.diffusion.data",
    "concept_task": "genforget.diffusion.data",
    "denoising_scores": "genforget.diffusion.scoring",
    "erase_concept": "genforget.diffusion.erase",
    "load_class_model": "genforget.diffusion.models",
    "load_digits_images": "genforget.diffusion.data",
    "load_pipeline": "genforget.diffusion.pipeline",
    "load_unlearned": "genforget.diffusion.pipeline_io",
    "pipeline_task": "genforget.diffusion.data",
    "predict_noise": "genforget.diffusion.scoring",
    "save_class_model": "genforget.diffusion.models",
    "save_erased": "genforget.diffusion.erase",
    "save_unlearned_pipeline": "genforget.diffusion.pipeline_io",
    "unlearn_diffusion": "genforget.diffusion.trainer",
}

__all__ = sorted(_LAZY)

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


def __getattr__(name: str) -> Any:
    value = lazy_attribute(__name__, _LAZY, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
