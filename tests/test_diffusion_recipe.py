"""The diffusion recipe (in-process and through a real ``accelerate launch``) and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genforget.cli.unlearn_diffusion import unlearn_diffusion_main
from genforget.diffusion.models import build_class_unet, build_scheduler, load_class_model, save_class_model

ROOT = Path(__file__).resolve().parents[1]


# These tiny UNets run ~50x slower with 2 threads on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def class_model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm")
    save_class_model(build_class_unet(block_out_channels=(16, 32)), build_scheduler(), out)
    return out


def _args(model_dir, out, *extra):
    return ["--model_name_or_path", str(model_dir), "--output_dir", str(out), "--erase_class", "0",
            "--max_steps", "2", "--batch_size", "8", "--retain_batch_size", "8", "--method", "salun", *extra]  # fmt: skip


def test_recipe_usage_errors_exit_2_and_write_nothing(class_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = _args(class_model_dir, out)
    assert unlearn_diffusion_main([a for a in args if a not in ("--erase_class", "0")]) == 2
    assert "erase_class" in capsys.readouterr().err
    assert unlearn_diffusion_main([*args, "--metod", "esd"]) == 2
    assert "Did you mean 'method'" in capsys.readouterr().err
    assert unlearn_diffusion_main([*args, "--forget_data", "nope.csv"]) == 2
    assert unlearn_diffusion_main([*args, "--save_mode", "adapter"]) == 2
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert unlearn_diffusion_main(args) == 2
    assert "not empty" in capsys.readouterr().err


def test_recipe_saves_a_lora_adapter_that_loads_on_its_base(class_model_dir, tmp_path):
    out = tmp_path / "lora"
    assert (
        unlearn_diffusion_main(_args(class_model_dir, out, "--use_lora", "true", "--save_mode", "adapter"))
        == 0
    )
    assert (out / "adapter_config.json").is_file() and not (out / "unet").exists()
    model, _ = load_class_model(out)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in model.state_dict().items())


def test_accelerate_launch_runs_the_recipe_for_two_steps(class_model_dir, tmp_path):
    out = tmp_path / "accel"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "recipes/accelerate/cpu.yaml"), "--num_cpu_threads_per_process", "1",
           str(ROOT / "recipes/unlearn_diffusion.py"), *_args(class_model_dir, out)]  # fmt: skip
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["world_size"] == 1 and record["erase_class"] == 0 and record["saved_as"] == "full"
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (out / "scheduler" / "scheduler_config.json").is_file()


def test_diffusion_demo_small_reports_in_the_lm_demo_shape_and_caches(tmp_path):
    from genforget.config import UnlearnConfig
    from genforget.demos.diffusion import run_diffusion_demo
    from genforget.demos.options import DiffusionDemoArgs
    from genforget.diffusion.data import DiffusionConfig

    args = DiffusionDemoArgs(
        output_dir=str(tmp_path / "dd"), samples_per_class=3, grid_per_class=2, train_epochs=1
    )
    ucfg = UnlearnConfig(method="salun", max_steps=2, batch_size=8, retain_batch_size=8)
    dcfg = DiffusionConfig(sample_steps=2)
    report = run_diffusion_demo(args, ucfg, dcfg)
    run = Path(args.output_dir)
    for f in ("report.json", "report.md", "report.png", "grid.png"):
        assert (run / f).stat().st_size > 0
    data = json.loads((run / "report.json").read_text())
    assert set(data) >= {"method", "suite", "config", "timings", "models", "audits", "details", "checks"}
    for name in ("victim", "unlearned"):
        assert {"erased_class_accuracy", "retained_accuracy", "retained_judge_fd"} <= set(
            data["models"][name]
        )
    assert all({"name", "value", "bar", "ok"} <= set(c) for c in data["checks"])
    report2 = run_diffusion_demo(args, ucfg, dcfg)  # cached victim: same training seconds, no retrain
    assert report2["timings"]["train_victim_s"] == report["timings"]["train_victim_s"]


def test_recipe_erases_a_concept_from_a_stable_diffusion_pipeline_dir(tmp_path):
    """A tiny StableDiffusionPipeline saved from configs stands in for real weights."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    from genforget.diffusion.models import build_tiny_text_components

    c = build_tiny_text_components(seed=0)
    vae = AutoencoderKL(block_out_channels=(8,), latent_channels=4, norm_num_groups=8, sample_size=16)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
        scheduler=c["scheduler"], safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(tmp_path / "sd")
    out = tmp_path / "esd"
    args = ["--model_name_or_path", str(tmp_path / "sd"), "--output_dir", str(out), "--method", "esd",
            "--max_steps", "1", "--batch_size", "2", "--num_model_samples", "2", "--sample_steps", "2",
            "--use_lora", "true", "--save_mode", "adapter"]  # fmt: skip
    assert unlearn_diffusion_main(args) == 2  # no --concept: usage error, nothing written
    assert not out.exists()
    assert unlearn_diffusion_main([*args, "--concept", "a photo of a church"]) == 0
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["saved_as"] == "adapter" and len(record["concept_sha256"]) == 64
    # letters-only tokenizer: no whole words to make neighbour prompts from, so only the built-in list
    assert record["keep_prompts"] == {
        "source": "builtin+neighbours",
        "count": 10,
        "neighbours": 0,
        "sha256": [],
    }
    assert "church" not in (out / "genforget_run.json").read_text()
    from genforget.diffusion.pipeline_io import load_unlearned

    model = load_unlearned(out)  # the base named in the run record + the LoRA, via load_lora_weights
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in model.unet.state_dict().items())


def test_sd_demo_small_reports_reloads_and_caches(tmp_path):
    """`genforget demo diffusion-sd` at toy size, with the shipped concept config: the report has
    the demo shape, the saved LoRA is reloaded from disk and the pipeline's own __call__ gives the
    samples that were judged, the victim/oracle are cached."""
    from genforget.cli.demos import demo_main

    run = tmp_path / "sd"
    argv = ["diffusion-sd", "--config", str(ROOT / "recipes/configs/esd_concept.yaml"), "--output_dir", str(run),
            "--images_per_concept", "8", "--vae_steps", "2", "--train_steps", "3", "--judge_samples", "8",
            "--eval_samples", "4", "--grid_per_concept", "2", "--num_threads", "1", "--max_steps", "2",
            "--num_model_samples", "2", "--keep_samples", "1", "--sample_steps", "2"]  # fmt: skip
    assert demo_main(argv) in (0, 1)  # toy training: the erasure bars may fail, the run may not
    report = json.loads((run / "report.json").read_text())
    for f in ("report.md", "report.png", "grid.png", "unlearned/README.md"):
        assert (run / f).stat().st_size > 0, f
    assert (run / "unlearned" / "pytorch_lora_weights.safetensors").is_file()
    assert set(report["models"]) == {"victim", "unlearned", "oracle"} and report["method"] == "esd"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["reloaded pipeline's own call vs measured samples (max abs diff)"]["ok"]
    assert checks["saved pipeline samples with the victim's own scheduler"]["ok"]
    assert not report["timings"]["cached"]
    assert demo_main(argv) in (0, 1)
    again = json.loads((run / "report.json").read_text())
    assert (
        again["timings"]["cached"]
        and again["timings"]["train_victim_s"] == report["timings"]["train_victim_s"]
    )
    assert demo_main(["diffusion-sd", "--erase", "a photo of a purple moon"]) == 2  # not one of the captions
