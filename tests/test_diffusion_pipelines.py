"""Stable Diffusion pipelines in and out: loading SD / SDXL dirs, the pipeline's own sampler and
prediction type, saving a loadable pipeline or a diffusers-format LoRA, the model card."""

from __future__ import annotations

import copy
import filecmp
import json

import pytest
import torch

from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.pipeline import TextToImage, load_pipeline
from genforget.diffusion.sampling import sample
from genforget.diffusion.scoring import training_scheduler, training_target
from genforget.diffusion.tiny import build_tiny_sd_pipeline, build_tiny_sdxl_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = DiffusionConfig(num_model_samples=4, keep_samples=2, sample_steps=3)
PROMPT = "a photo of a red square"


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sd")
    build_tiny_sd_pipeline(seed=0).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdxl")
    build_tiny_sdxl_pipeline(seed=0).save_pretrained(out)
    return out


def _unet_out(unet, model, prompt=PROMPT, seed=0):
    """The UNet's output on one fixed latent, timestep and prompt."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *model.sample_shape, generator=g)
    from genforget.diffusion.scoring import predict_noise

    with torch.no_grad():
        return predict_noise(unet, x, torch.tensor([500]), model.cond_key, model.encode([prompt]))


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_our_sampler_is_the_pipelines_own_call(kind, sd_dir, sdxl_dir):
    """Same start noise: genforget's sampler + VAE decode == pipe(prompt) (Euler, guidance, and for
    SDXL both encoders, the pooled embedding and add_time_ids); so what the judges see is what a
    user of the pipeline gets."""
    model = load_pipeline(sd_dir if kind == "sd" else sdxl_dir)
    assert model.kind == kind and type(model.scheduler).__name__ == "EulerDiscreteScheduler"
    noise = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(3))
    cond = model.encode([PROMPT, "a photo of a blue circle"])
    ours = sample(model.unet, model.scheduler, model.cond_key, cond, model.null(), model.sample_shape,
                  steps=4, guidance_scale=5.0, noise=noise)  # fmt: skip
    ours = (model.decode(ours) + 1) / 2
    theirs = model.pipe([PROMPT, "a photo of a blue circle"], num_inference_steps=4, guidance_scale=5.0,
                        latents=noise.clone(), output_type="pt").images  # fmt: skip
    torch.testing.assert_close(ours, theirs.clamp(0, 1), atol=2e-4, rtol=0)
    if kind == "sdxl":
        assert set(cond) == {"encoder_hidden_states", "text_embeds", "time_ids"}
        assert model.null()["encoder_hidden_states"].abs().sum() == 0  # force_zeros_for_empty_prompt


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_training_target_follows_the_prediction_type(kind):
    sched = build_tiny_sd_pipeline(prediction_type=kind).scheduler
    x0, noise, t = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2), torch.tensor([0, 400, 999])
    a = training_scheduler(sched).alphas_cumprod[t].view(-1, 1, 1, 1)
    want = {"epsilon": noise, "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * x0, "sample": x0}[kind]
    torch.testing.assert_close(training_target(sched, x0, noise, t), want)
    assert training_scheduler(sched).config.clip_sample is False  # noising never clips latents


def _recipe(src, out, *extra):
    from genforget.cli.unlearn_diffusion import unlearn_diffusion_main

    args = ["--model_name_or_path", str(src), "--output_dir", str(out), "--concept", PROMPT,
            "--max_steps", "2", "--batch_size", "2", "--retain_batch_size", "2", "--num_model_samples", "2",
            "--keep_samples", "1", "--sample_steps", "2", "--keep_prompts", "a photo of a blue circle", *extra]  # fmt: skip
    return unlearn_diffusion_main(args)


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_recipe_saves_a_pipeline_that_diffusers_loads_and_generates_from(kind, sd_dir, sdxl_dir, tmp_path):
    from diffusers import DiffusionPipeline
    from huggingface_hub import ModelCard

    src = sd_dir if kind == "sd" else sdxl_dir
    out = tmp_path / "erased"
    assert _recipe(src, out, "--method", "esd", "--learning_rate", "0.01") == 0
    pipe = DiffusionPipeline.from_pretrained(out)
    assert type(pipe).__name__ == ("StableDiffusionPipeline" if kind == "sd" else "StableDiffusionXLPipeline")
    image = pipe(PROMPT, num_inference_steps=2, output_type="pt").images
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    # only the UNet was rewritten; the rest (the pipeline's Euler scheduler included) is a byte copy
    base = load_pipeline(src)
    assert not torch.equal(_unet_out(pipe.unet, base), _unet_out(base.unet, base))
    for sub in ("scheduler", "vae", "text_encoder", "tokenizer") + (
        ("text_encoder_2",) if kind == "sdxl" else ()
    ):
        cmp = filecmp.dircmp(src / sub, out / sub)
        assert not cmp.diff_files and not cmp.left_only, sub
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "diffusers" and "concept-erasure" in card.data.tags
    assert str(src) not in (out / "README.md").read_text()  # a local base path stays out of the card
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["saved_as"] == "full" and record["keep_prompts"]["count"] == 1
    for f in ("README.md", "genforget_run.json"):
        text = (out / f).read_text()
        assert "red square" not in text and "blue circle" not in text  # prompts only as hashes
        assert record["concept_sha256"] in text


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_lora_run_saves_a_diffusers_lora_that_load_lora_weights_attaches(kind, sd_dir, sdxl_dir, tmp_path):
    """The LoRA dir attaches with diffusers' own pipe.load_lora_weights: its UNet then differs from
    the base and equals the merged UNet of the same run (lora_alpha carried in the metadata)."""
    from diffusers import DiffusionPipeline

    from genforget.diffusion.erase import erase_concept, save_erased

    src = sd_dir if kind == "sd" else sdxl_dir
    result = erase_concept(src, PROMPT, "salun", keep_prompts=["a photo of a blue circle"],
                           diffusion_config=FAST, use_lora=True, lora_r=4, lora_alpha=8, max_steps=3,
                           learning_rate=0.05, batch_size=2, retain_batch_size=2)  # fmt: skip
    assert save_erased(result, tmp_path / "lora") == "adapter"
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert not (tmp_path / "lora" / "model_index.json").exists()  # never mistaken for a full pipeline
    assert save_erased(result, tmp_path / "full", "full") == "full"  # merges; also writes lora/
    base = load_pipeline(src)
    before = _unet_out(base.unet, base)
    base.pipe.load_lora_weights(tmp_path / "lora")
    attached = _unet_out(base.unet, base)
    merged = DiffusionPipeline.from_pretrained(tmp_path / "full").unet
    assert (attached - before).abs().max() > 1e-3
    torch.testing.assert_close(attached, _unet_out(merged, base), atol=1e-4, rtol=1e-4)
    again = load_pipeline(src)
    again.pipe.load_lora_weights(tmp_path / "full" / "lora")
    torch.testing.assert_close(_unet_out(again.unet, again), attached)


@pytest.fixture(scope="module")
def vpred(tmp_path_factory):
    """A v-prediction (SD 2.x style) tiny pipeline trained briefly on its own data: two concepts'
    shapes, pooled to the latent grid (a stand-in for VAE latents), 150 steps."""
    import torch.nn.functional as F

    from genforget.diffusion.shapes import shapes_dataset
    from genforget.diffusion.t2i_train import T2ITrainConfig, train_text_to_image

    prompts = ["a photo of a red square", "a photo of a blue circle"]
    x, captions = shapes_dataset(prompts, 32, size=32, seed=0)
    pooled = F.avg_pool2d(x, 4)
    latents = torch.cat([pooled, pooled.mean(1, keepdim=True)], 1) * 1.5
    model = TextToImage(build_tiny_sd_pipeline(seed=0, prediction_type="v_prediction"), None, "tiny-v")
    train_text_to_image(
        model, captions, T2ITrainConfig(steps=150, batch_size=32, learning_rate=3e-3), latents=latents
    )
    return model, latents, captions


def _loss(model, latents, captions, target_kind):
    """Denoising MSE on the training data with the v target (right) or the noise (the old bug)."""
    from genforget.diffusion.scoring import add_noise, predict_noise

    g = torch.Generator().manual_seed(11)
    sched = training_scheduler(model.scheduler)
    x_t, t, noise = add_noise(sched, latents, g)
    target = training_target(sched, latents, noise, t) if target_kind == "v" else noise
    with torch.no_grad():
        pred = predict_noise(model.unet, x_t, t, model.cond_key, model.encode(captions))
    return (pred - target).pow(2).mean().item()


def test_v_prediction_pipeline_keeps_its_denoising_loss_through_unlearning(vpred):
    """Trained on v, the model's loss is low only with the v target; an ESD run whose retain term is
    the kept concept's own data leaves that loss at its trained level (with the noise as the
    retain target, as before, it climbs)."""
    from genforget.config import UnlearnConfig
    from genforget.diffusion.data import pipeline_task
    from genforget.diffusion.trainer import unlearn_diffusion

    model, latents, captions = vpred
    trained_v, trained_eps = _loss(model, latents, captions, "v"), _loss(model, latents, captions, "eps")
    assert trained_v < 0.5 * trained_eps, (trained_v, trained_eps)
    kept = [i for i, c in enumerate(captions) if c != PROMPT]
    kept_lat, kept_cap = latents[kept], [captions[i] for i in kept]
    kept_before = _loss(model, kept_lat, kept_cap, "v")
    task = pipeline_task(model, PROMPT, keep_prompts=[], retain_images=kept_lat, retain_prompts=kept_cap)
    cfg = UnlearnConfig(method="esd", max_steps=25, learning_rate=2e-3, batch_size=4, retain_batch_size=16,
                        retain_weight=5.0)  # fmt: skip
    unet = unlearn_diffusion(copy.deepcopy(model.unet), model.scheduler, task, cfg, FAST)
    after = TextToImage(model.pipe.__class__(**{**model.pipe.components, "unet": unet}), None, "after")
    kept_after = _loss(after, kept_lat, kept_cap, "v")
    assert kept_after < 1.25 * kept_before, (kept_after, kept_before)


def test_anchor_term_holds_the_prompts_to_keep(vpred):
    """The same ESD run with and without its anchor term on the trained two-concept pipeline: the
    kept prompt's prediction moves far less with it, the erased prompt's about as much; the
    anchor samples are counted."""
    from genforget.config import UnlearnConfig
    from genforget.diffusion.data import pipeline_task
    from genforget.diffusion.trainer import unlearn_diffusion

    model, keep = vpred[0], "a photo of a blue circle"
    moved = {}
    for weight in (0.0, 5.0):
        task = pipeline_task(model, PROMPT, keep_prompts=[keep])
        cfg = UnlearnConfig(method="esd", use_lora=True, max_steps=12, learning_rate=1e-2, batch_size=4,
                            retain_batch_size=4, retain_weight=weight)  # fmt: skip
        info: dict = {}
        unet = unlearn_diffusion(copy.deepcopy(model.unet), model.scheduler, task, cfg, FAST, info=info)
        moved[weight] = {p: float((_unet_out(unet, model, p) - _unet_out(model.unet, model, p)).norm())
                         for p in (PROMPT, keep)}  # fmt: skip
        if weight:
            assert (
                info["keep_prompts"] == 2 and info["keep_samples"] == 2 * FAST.keep_samples
            )  # + the empty prompt
    assert moved[5.0][keep] < 0.3 * moved[0.0][keep], moved
    assert moved[5.0][PROMPT] > 0.7 * moved[0.0][PROMPT], moved


def _erase_and_judge(vpred, keep_prompts, overrides: list[str]):
    """Erase PROMPT from the trained two-concept pipeline with the shipped concept config (plus
    ``overrides``) and judge victim and unlearned with a CNN fitted on the victim's own generations
    (latents: this fixture has no trained VAE)."""
    from genforget.cli.args import parse_config
    from genforget.config import UnlearnConfig
    from genforget.diffusion.concept_judge import fit_judge_on_samples
    from genforget.diffusion.concept_suite import erasure_table, generate
    from genforget.diffusion.erase import erase_concept

    model, _, _ = vpred
    ucfg, dcfg = parse_config(
        (UnlearnConfig, DiffusionConfig), ["--config", "recipes/configs/esd_concept.yaml", *overrides]
    )
    prompts = [PROMPT, "a photo of a blue circle"]
    judge = fit_judge_on_samples(generate(model, prompts, 32, dcfg, seed=1, decode=False), "cnn")
    copy_ = TextToImage(
        model.pipe.__class__(**{**model.pipe.components, "unet": copy.deepcopy(model.unet)}), None, "c"
    )
    fields = {k: v for k, v in ucfg.__dict__.items() if k != "method"}
    result = erase_concept(
        copy_, PROMPT, ucfg.method, keep_prompts=keep_prompts, diffusion_config=dcfg, **fields
    )
    samples = {"victim": generate(model, prompts, 24, dcfg, seed=1234, decode=False),
               "unlearned": generate(result.model, prompts, 24, dcfg, seed=1234, decode=False)}  # fmt: skip
    models, per = erasure_table(judge, samples, PROMPT)
    assert judge.heldout_accuracy >= 0.9 and models["victim"]["erased_concept_accuracy"] >= 0.8, per
    return models["unlearned"], per


def test_concept_config_erases_one_concept_and_keeps_the_other(vpred):
    """The shipped concept config at a third of its steps, the other concept named as the prompt
    to keep: the erased concept in <= 10 % of the unlearned model's generations, the kept one in
    >= 0.9x the victim's share."""
    fast = ["--max_steps", "70", "--num_model_samples", "24", "--keep_samples", "6", "--sample_steps", "12"]
    unlearned, per = _erase_and_judge(vpred, ["a photo of a blue circle"], fast)
    assert unlearned["erased_concept_accuracy"] <= 0.10, per
    assert unlearned["worst_kept_ratio"] >= 0.9, per


@pytest.mark.slow
def test_shipped_concept_config_as_is_with_the_builtin_prompts_to_keep(vpred):
    """recipes/configs/esd_concept.yaml exactly as shipped, no prompts to keep named (the built-in
    list is anchored): the same bars."""
    unlearned, per = _erase_and_judge(vpred, None, [])
    assert unlearned["erased_concept_accuracy"] <= 0.10, per
    assert unlearned["worst_kept_ratio"] >= 0.9, per


def test_pipeline_usage_errors_exit_2_and_write_nothing(sd_dir, tmp_path, capsys):
    import shutil

    from genforget.cli.unlearn_diffusion import unlearn_diffusion_main

    out = tmp_path / "out"
    base = ["--output_dir", str(out), "--max_steps", "1"]
    assert unlearn_diffusion_main(["--model_name_or_path", str(sd_dir), *base]) == 2
    assert "needs --concept" in capsys.readouterr().err
    assert (
        unlearn_diffusion_main(
            ["--model_name_or_path", str(sd_dir), "--concept", PROMPT, "--erase_class", "1", *base]
        )
        == 2
    )
    assert "erase_class is for class-conditional models" in capsys.readouterr().err
    other = tmp_path / "img2img"
    shutil.copytree(sd_dir, other)
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(
        json.dumps({**index, "_class_name": "StableDiffusionImg2ImgPipeline"})
    )
    assert unlearn_diffusion_main(["--model_name_or_path", str(other), "--concept", PROMPT, *base]) == 2
    assert "StableDiffusionImg2ImgPipeline is not supported" in capsys.readouterr().err
    assert (
        unlearn_diffusion_main(
            ["--model_name_or_path", "nobody/no-such-pipeline", "--concept", PROMPT, *base]
        )
        == 2
    )
    assert "not in the hub cache" in capsys.readouterr().err
    assert unlearn_diffusion_main(["--model_name_or_path", str(sd_dir), "--concept", PROMPT,
                                   "--keep_prompts", PROMPT, *base]) == 2  # fmt: skip
    assert "keep_prompts holds the concept" in capsys.readouterr().err
    assert unlearn_diffusion_main(["--model_name_or_path", str(sd_dir), "--concept", PROMPT,
                                   "--forget_data", str(tmp_path / "none"), *base]) == 2  # fmt: skip
    assert "a dir of .png/.jpg images of the concept" in capsys.readouterr().err
    assert not out.exists()


def test_user_images_of_the_concept_are_encoded_by_the_pipelines_vae(sd_dir, tmp_path):
    import numpy as np
    from PIL import Image

    images = tmp_path / "concept"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((48, 48, 3), 40 * i, dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "out"
    assert _recipe(sd_dir, out, "--method", "salun", "--forget_data", str(images), "--use_lora", "true") == 0
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["trained_on"]["forget_images"] == "3 given" and record["saved_as"] == "adapter"


def test_neighbour_prompts_swap_one_content_word_for_a_vocabulary_word():
    from genforget.diffusion.anchors import FRAME_WORDS, neighbour_prompts, vocabulary_words
    from genforget.diffusion.models import build_tiny_text_components
    from genforget.diffusion.tiny import TINY_WORDS, tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    assert set(vocabulary_words(tok)) == {w for w in TINY_WORDS if len(w) >= 3}
    near = neighbour_prompts(PROMPT, tok, 12, seed=3)
    assert len(near) == len(set(near)) == 12 and PROMPT not in near
    for p in near:
        diff = [(a, b) for a, b in zip(PROMPT.split(), p.split(), strict=True) if a != b]
        assert len(diff) == 1 and diff[0][0] not in FRAME_WORDS and diff[0][1] in TINY_WORDS, p
    assert neighbour_prompts(PROMPT, tok, 12, seed=3) == near  # seeded
    assert neighbour_prompts(PROMPT, build_tiny_text_components()["tokenizer"], 12) == []  # letters only
