"""Diffusion unlearning: scores vs hand computation, the method grid, LoRA, the text path."""

from __future__ import annotations

import copy

import pytest
import torch

from genforget.config import UnlearnConfig, settings_for
from genforget.diffusion.data import DiffusionConfig, class_task, concept_task, load_digits_images
from genforget.diffusion.models import build_class_unet, build_scheduler, build_tiny_text_components
from genforget.diffusion.scoring import add_noise, denoising_scores, esd_target, mse_scores, predict_noise
from genforget.diffusion.trainer import saliency_masks, unlearn_diffusion
from genforget.methods.registry import METHODS, get_method
from genforget.scores import Scores

DIFF_METHODS = sorted(n for n, cls in METHODS.items() if "diffusion" in cls.modalities)
FAST = DiffusionConfig(num_model_samples=4, sample_steps=2)


# These tiny UNets run ~50x slower with 2 threads on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits_images()


@pytest.fixture
def unet():
    return build_class_unet(block_out_channels=(16, 32), seed=0)


@pytest.fixture
def task(digits):
    """Erase digit 0: 8 forget images, 16 retain images (small, so a step is quick)."""
    x, y = digits
    keep = torch.cat([torch.where(y == 0)[0][:8], torch.where(y != 0)[0][:16]])
    return class_task(x[keep], y[keep], erase=0, num_classes=10)


def _cfg(name: str, **kw) -> UnlearnConfig:
    base = dict(method=name, max_steps=2, learning_rate=1e-2, batch_size=4, retain_batch_size=4)
    return UnlearnConfig(**settings_for(name, {**base, **kw}))


def test_diffusion_scores_are_minus_mse_of_the_noise_prediction(unet, task):
    sched = build_scheduler()
    x0, c = task.forget_images[:3], task.forget_cond[:3]
    scores = denoising_scores(unet, sched, x0, "class_labels", c, torch.Generator().manual_seed(7))
    # by hand, from the same generator draws
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (3,), generator=g)
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    mse = ((unet(x_t, t, class_labels=c).sample - noise) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(scores.nll, mse)
    torch.testing.assert_close(scores.logp, -mse)


@pytest.mark.parametrize("name", ["grad_ascent", "grad_diff", "npo", "simnpo"])
def test_shared_methods_give_the_same_loss_on_diffusion_scores_as_on_hand_tensors(name, unet, task):
    sched = build_scheduler()
    g = torch.Generator().manual_seed(3)
    x_t, t, noise = add_noise(sched, task.forget_images[:4], g)
    pred = predict_noise(unet, x_t, t, "class_labels", task.forget_cond[:4])
    ref_pred = predict_noise(
        build_class_unet(block_out_channels=(16, 32), seed=1), x_t, t, "class_labels", task.forget_cond[:4]
    )
    forget = mse_scores(pred, noise)
    forget.ref_logp = mse_scores(ref_pred, noise).logp
    retain = denoising_scores(unet, sched, task.retain_images[:4], "class_labels", task.retain_cond[:4], g)
    mse = ((pred - noise) ** 2).flatten(1).mean(1).detach()
    ref_mse = ((ref_pred - noise) ** 2).flatten(1).mean(1).detach()
    hand = Scores(logp=-mse, nll=mse, ref_logp=-ref_mse)
    hand_retain = Scores(logp=-retain.nll.detach(), nll=retain.nll.detach())
    method = get_method(name)(
        UnlearnConfig(**settings_for(name, dict(method=name, beta=0.5, gamma=0.1, retain_weight=2.0)))
    )
    got, want = method.loss(forget, retain), method.loss(hand, hand_retain)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    if name == "grad_ascent":
        assert got.item() == pytest.approx(-mse.mean().item(), rel=1e-5)
    if name == "grad_diff":
        assert got.item() == pytest.approx((-mse.mean() + 2.0 * retain.nll.mean()).item(), rel=1e-5)
    if name == "npo":
        expected = -(2 / 0.5) * torch.nn.functional.logsigmoid(-0.5 * (ref_mse - mse)).mean()
        assert got.item() == pytest.approx((expected + 2.0 * retain.nll.mean()).item(), rel=1e-5)


def test_esd_target_and_loss_match_hand_computation():
    cond, uncond = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.0]])
    target = esd_target(cond, uncond, eta=2.0)
    torch.testing.assert_close(target, torch.tensor([[-0.5, -4.0]]))  # 0.5 - 2*0.5, 0 - 2*2
    pred = torch.tensor([[0.5, -3.0]])  # errors 1 and 1: MSE 1
    scores = mse_scores(pred, target)
    retain = Scores(logp=-torch.ones(1), nll=torch.ones(1))
    esd = get_method("esd")(UnlearnConfig(method="esd", retain_weight=0.5))
    assert esd.loss(scores, retain).item() == pytest.approx(1.5)  # + 0.5 x the retain (anchor) MSE
    paper = get_method("esd")(UnlearnConfig(method="esd", retain_weight=0.0))
    assert paper.loss(scores, retain).item() == pytest.approx(1.0)
    salun = get_method("salun")(UnlearnConfig(method="salun", retain_weight=2.0))
    assert salun.loss(scores, Scores(logp=torch.zeros(1), nll=torch.ones(1))).item() == pytest.approx(3.0)


def test_saliency_mask_keeps_the_requested_share(unet, task):
    params = list(unet.parameters())
    masks = saliency_masks(
        unet, params, build_scheduler(), task.forget_images, task.forget_cond, "class_labels", 0.3, 4,
        torch.Generator().manual_seed(0),
    )  # fmt: skip
    share = sum(m.sum().item() for m in masks) / sum(p.numel() for p in params)
    assert 0.29 < share < 0.31


@pytest.mark.parametrize("name", DIFF_METHODS)
def test_every_diffusion_method_changes_weights(name, unet, task):
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    model = unlearn_diffusion(unet, build_scheduler(), task, _cfg(name, saliency_ratio=0.3), FAST)
    after = model.state_dict()
    changed = sum((after[k] != before[k]).sum().item() for k in before)
    total = sum(v.numel() for v in before.values())
    unchanged_tensors = [k for k in before if torch.equal(after[k], before[k])]
    if name == "salun":  # only the salient 30 % may move
        assert 0.05 * total < changed <= 0.3 * total + 1
    else:
        assert not unchanged_tensors, f"{name}: parameters not updated: {unchanged_tensors[:5]}"


@pytest.mark.parametrize("name", DIFF_METHODS)
def test_diffusion_lora_trains_adapter_and_keeps_base_bit_identical(name, unet, task):
    base = [(p, p.detach().clone()) for p in unet.parameters()]
    model = unlearn_diffusion(unet, build_scheduler(), task, _cfg(name, use_lora=True, lora_r=4), FAST)
    lora_b = [v for k, v in model.state_dict().items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero and must have moved"
    assert all(not p.requires_grad for p, _ in base)
    assert all(torch.equal(p, snap) for p, snap in base), "a base weight changed"


def test_text_conditional_path_erases_a_concept_in_one_step():
    c = build_tiny_text_components(seed=0)
    unet = c["unet"]
    task = concept_task(
        c["tokenizer"], c["text_encoder"], "a photo of a church", (4, 8, 8), ["a photo of a cat"]
    )
    before = copy.deepcopy(unet.state_dict())
    text_before = copy.deepcopy(c["text_encoder"].state_dict())
    model = unlearn_diffusion(unet, c["scheduler"], task, _cfg("esd", max_steps=1, batch_size=2), FAST)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("attn2" in k for k in changed), "cross-attention weights must move"
    assert all(torch.equal(v, text_before[k]) for k, v in c["text_encoder"].state_dict().items())


def test_text_conditional_salun_with_lora_and_given_latents():
    c = build_tiny_text_components(seed=0)
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    task = concept_task(
        c["tokenizer"], c["text_encoder"], "van gogh style painting", (4, 8, 8), ["a photo of a dog"],
        forget_images=latents, retain_images=latents, retain_prompts=["a photo of a dog"] * 4,
    )  # fmt: skip
    model = unlearn_diffusion(c["unet"], c["scheduler"], task, _cfg("salun", use_lora=True), FAST)
    assert any(v.abs().sum() > 0 for k, v in model.state_dict().items() if "lora_B" in k)


def test_methods_without_images_train_on_the_models_own_samples_and_say_so(task, tiny_lm, tokenizer, capsys):
    c = build_tiny_text_components(seed=0)
    concept = concept_task(c["tokenizer"], c["text_encoder"], "a photo of a church", (4, 8, 8))
    info: dict = {}
    before = copy.deepcopy(c["unet"].state_dict())
    model = unlearn_diffusion(c["unet"], c["scheduler"], concept, _cfg("npo"), FAST, info=info)
    assert info["forget_images"] == f"{FAST.num_model_samples} samples of the frozen model"
    assert "no forget images given" in capsys.readouterr().err
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    info = {}
    unlearn_diffusion(
        build_class_unet(block_out_channels=(16, 32)), build_scheduler(), task, _cfg("esd"), FAST, info=info
    )
    assert "given forget images are not used" in capsys.readouterr().err  # ESD's own samples, said so
    assert info["forget_images"] == f"{FAST.num_model_samples} samples of the frozen model"
    from genforget.lm.trainer import unlearn_lm

    with pytest.raises(ValueError, match="not language models"):
        unlearn_lm(tiny_lm, tokenizer, [{"text": "x"}], None, UnlearnConfig(method="esd"))
    with pytest.raises(ValueError, match="erase_class must be in 0..9"):
        class_task(task.forget_images, task.forget_cond, erase=10, num_classes=10)
    with pytest.raises(ValueError, match="saliency_ratio"):
        UnlearnConfig(method="salun", saliency_ratio=0)
    with pytest.raises(ValueError, match="keep_prompts holds the concept"):
        concept_task(c["tokenizer"], c["text_encoder"], "a cat", (4, 8, 8), keep_prompts=["a cat"])
