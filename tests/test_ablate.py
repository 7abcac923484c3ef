"""Concept ablation (Kumari et al. 2023): the forgotten caption's prediction moves onto the frozen
model's prediction for the anchor caption, on the anchor's own samples."""

from __future__ import annotations

import copy

import pytest
import torch

from genforget.config import UnlearnConfig, settings_for
from genforget.diffusion.data import DiffusionConfig, concept_task
from genforget.diffusion.models import build_tiny_text_components
from genforget.diffusion.scoring import add_noise, predict_noise
from genforget.diffusion.trainer import unlearn_diffusion

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = DiffusionConfig(num_model_samples=4, sample_steps=2)


def _gap(unet, frozen, x0, cf, ca, sched) -> float:  # noqa: ANN001
    """MSE between the model's prediction for the forgotten caption and the frozen one for the
    anchor, on fixed noisings of ``x0``."""
    from genforget.diffusion.scoring import training_scheduler

    g = torch.Generator().manual_seed(3)
    x_t, t, _ = add_noise(training_scheduler(sched), x0, g)
    n = len(x0)
    with torch.no_grad():
        a = predict_noise(unet, x_t, t, "encoder_hidden_states", cf.expand(n, -1, -1))
        b = predict_noise(frozen, x_t, t, "encoder_hidden_states", ca.expand(n, -1, -1))
    return float((a - b).pow(2).mean())


def test_ablation_maps_the_caption_onto_the_anchor(capsys) -> None:
    c = build_tiny_text_components(seed=0)
    task = concept_task(c["tokenizer"], c["text_encoder"], "a photo of a church", (4, 8, 8),
                        other_prompts=["a photo of a cat"], keep_prompts=["a photo of a dog"],
                        forget_images=torch.randn(2, 4, 8, 8))  # fmt: skip
    # An untrained UNet barely reads its text condition: an anchor condition far from the
    # forgotten one makes the two frozen predictions differ enough to measure the move.
    task.other_conds = task.forget_cond[:1] + 3 * torch.randn(task.forget_cond[:1].shape,
                                                              generator=torch.Generator().manual_seed(2))  # fmt: skip
    frozen = copy.deepcopy(c["unet"]).eval()
    x0 = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    cf, ca = task.forget_cond[:1], task.other_conds[:1]
    before = _gap(c["unet"], frozen, x0, cf, ca, c["scheduler"])
    cfg = UnlearnConfig(**settings_for("ablate", dict(method="ablate", max_steps=40, learning_rate=1e-4,
                                                      batch_size=4, retain_weight=0.0)))  # fmt: skip
    info: dict = {}
    model = unlearn_diffusion(c["unet"], c["scheduler"], task, cfg, FAST, info=info)
    after = _gap(model, frozen, x0, cf, ca, c["scheduler"])
    assert after < 0.5 * before, (before, after)
    assert info["forget_images"] == "4 samples of the frozen model for the anchor"
    assert "given forget images are not used" in capsys.readouterr().err  # said, not hidden


def test_anchor_prompt_reaches_the_task() -> None:
    from genforget.methods.ablate import AblateConfig

    cfg = UnlearnConfig(**settings_for("ablate", {"method": "ablate", "anchor_prompt": "a photo"}))
    assert isinstance(cfg, AblateConfig) and cfg.anchor_prompt == "a photo"
