"""Diffusion unlearning: the same methods as for LMs, on noise-prediction models.

Class-conditional path: ``UNet2DModel`` with a null class for classifier-free guidance +
``DDPMScheduler`` (the embedded digits benchmark). Text-conditional path: ``UNet2DConditionModel``
+ a CLIP text encoder (a ``StableDiffusionPipeline`` dir, or tiny components in tests), erasing a
concept prompt. See :func:`genforget.diffusion.trainer.unlearn_diffusion`.
"""

from genforget.diffusion.data import DiffusionTask, class_task, concept_task, load_digits_images
from genforget.diffusion.models import (
    build_class_unet,
    build_scheduler,
    load_class_model,
    save_class_model,
)
from genforget.diffusion.scoring import denoising_scores, predict_noise
from genforget.diffusion.trainer import unlearn_diffusion

__all__ = [
    "DiffusionTask",
    "build_class_unet",
    "build_scheduler",
    "class_task",
    "concept_task",
    "denoising_scores",
    "load_class_model",
    "load_digits_images",
    "predict_noise",
    "save_class_model",
    "unlearn_diffusion",
]
