"""Diffusion unlearning: the same methods as for LMs, on diffusers UNets.

Class-conditional path: ``UNet2DModel`` with a null class for classifier-free guidance +
``DDPMScheduler`` (the embedded digits benchmark). Text-to-image path: a Stable Diffusion 1.x/2.x
or SDXL pipeline dir or hub id, erasing a concept prompt while anchoring the prompts to keep, trained
and sampled with the pipeline's own scheduler and prediction type, saved as a pipeline diffusers
loads or as a diffusers-format LoRA (:func:`erase_concept`, :func:`save_erased`). See
:func:`genforget.diffusion.trainer.unlearn_diffusion` for the loop both share.
"""

from genforget.diffusion.data import (
    DiffusionTask,
    class_task,
    concept_task,
    load_digits_images,
    pipeline_task,
)
from genforget.diffusion.erase import erase_concept, save_erased
from genforget.diffusion.models import (
    build_class_unet,
    build_scheduler,
    load_class_model,
    save_class_model,
)
from genforget.diffusion.pipeline import TextToImage, load_pipeline
from genforget.diffusion.pipeline_io import load_unlearned, save_unlearned_pipeline
from genforget.diffusion.scoring import denoising_scores, predict_noise
from genforget.diffusion.trainer import unlearn_diffusion

__all__ = [
    "DiffusionTask",
    "TextToImage",
    "build_class_unet",
    "build_scheduler",
    "class_task",
    "concept_task",
    "denoising_scores",
    "erase_concept",
    "load_class_model",
    "load_digits_images",
    "load_pipeline",
    "load_unlearned",
    "pipeline_task",
    "predict_noise",
    "save_class_model",
    "save_erased",
    "save_unlearned_pipeline",
    "unlearn_diffusion",
]
