"""report_to for the diffusion recipe: per-step scalars in a TensorBoard event file beside the
output dir, read back by TensorBoard, equal to the method's loss of the logged forget/retain terms."""

from __future__ import annotations

import json

import pytest
from conftest import tensorboard_scalars

from genforget.cli.unlearn_diffusion import unlearn_diffusion_main
from genforget.diffusion.models import build_class_unet, build_scheduler, save_class_model

pytest.importorskip("tensorboard")  # genforget[tracking], installed by `make install`

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny UNets crawl on two shared threads


def test_diffusion_recipe_reports_per_step_scalars_to_tensorboard(tmp_path):
    model_dir = tmp_path / "ddpm"
    save_class_model(build_class_unet(block_out_channels=(16, 32)), build_scheduler(), model_dir)
    out = tmp_path / "run"
    args = ["--model_name_or_path", str(model_dir), "--output_dir", str(out), "--erase_class", "0",
            "--max_steps", "3", "--batch_size", "8", "--retain_batch_size", "8", "--method", "grad_diff",
            "--retain_weight", "0.5", "--learning_rate", "2e-4", "--report_to", "tensorboard",
            "--logging_steps", "2"]  # fmt: skip
    assert unlearn_diffusion_main(args) == 0
    assert json.loads((out / "genforget_run.json").read_text())["method"] == "grad_diff"
    scalars = tensorboard_scalars(tmp_path / "run.logs")  # beside the output dir, as genforget unlearn
    steps = {k: [s for s, _ in v] for k, v in scalars.items()}
    # logging_steps 2: rows flushed at steps 2 and 3, every step's row kept
    assert steps["train/loss"] == steps["train/forget_nll"] == steps["train/retain_nll"] == [1, 2, 3]
    for (_, loss), (_, f), (_, r) in zip(
        scalars["train/loss"], scalars["train/forget_nll"], scalars["train/retain_nll"], strict=True
    ):
        assert f > 0 and r > 0
        assert loss == pytest.approx(-f + 0.5 * r, rel=1e-5, abs=1e-6)  # GradDiff's loss of the logged terms
    assert all(v == pytest.approx(2e-4) for _, v in scalars["train/learning_rate"])


def test_diffusion_report_to_none_writes_no_logs(tmp_path):
    model_dir = tmp_path / "ddpm"
    save_class_model(build_class_unet(block_out_channels=(16, 32)), build_scheduler(), model_dir)
    args = ["--model_name_or_path", str(model_dir), "--output_dir", str(tmp_path / "run"), "--erase_class", "0",
            "--max_steps", "1", "--batch_size", "4", "--retain_batch_size", "4", "--method", "grad_diff"]  # fmt: skip
    assert unlearn_diffusion_main(args) == 0
    assert not (tmp_path / "run.logs").exists() and not (tmp_path / "genforget_logs").exists()
    assert (
        unlearn_diffusion_main([*args[:3], str(tmp_path / "r2"), *args[4:], "--report_to", "tensorbord"]) == 2
    )
    assert not (tmp_path / "r2").exists()
