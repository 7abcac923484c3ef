"""Recipes and the demo pipeline: config parsing, outputs, usage errors, privacy, accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tensorboard_scalars

from genforget.cli import train_victim_main, unlearn_main
from genforget.cli.args import parse_config
from genforget.config import UnlearnConfig, UsageError

ROOT = Path(__file__).resolve().parents[1]
CORPUS_ARGS = ["--n_people", "20", "--n_passages", "10", "--forget_frac", "0.2"]


def _args(victim_dir, out, *extra):
    return [
        "--model_name_or_path",
        str(victim_dir),
        "--forget_data",
        "pii:forget",
        "--retain_data",
        "pii:retain",
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        # 3 steps cannot forget: these tests check mechanics; test_outcome.py checks the exit code 3.
        "--allow_partial",
        "true",
        *CORPUS_ARGS,
        *extra,
    ]


def _leaks(run_dir: Path, corpus) -> list[str]:
    """Forget-set PII values (names included) found in any file under run_dir."""
    values = corpus.pii_values("forget") + [t.text for t in corpus.texts("forget")]
    blobs = [p.read_bytes() for p in run_dir.rglob("*") if p.is_file()]
    return [v for v in values if any(v.encode() in b for b in blobs)]


def test_yaml_then_cli_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: simnpo\nlearning_rate: 0.01\nlora_target_modules: [q_proj]\n")
    (ucfg,) = parse_config(
        (UnlearnConfig,), ["--config", str(cfg), "--learning_rate", "0.5", "--use_lora", "true"]
    )
    assert (ucfg.method, ucfg.learning_rate, ucfg.use_lora, ucfg.lora_target_modules) == (
        "simnpo",
        0.5,
        True,
        ["q_proj"],
    )
    cfg.write_text("lerning_rate: 0.1\n")
    with pytest.raises(UsageError, match="Did you mean 'learning_rate'"):
        parse_config((UnlearnConfig,), ["--config", str(cfg)])
    with pytest.raises(UsageError, match="max_steps must be >= 1"):
        parse_config((UnlearnConfig,), ["--max_steps", "0"])


@pytest.mark.parametrize("name", ["npo_pii", "npo_lora_pii", "robust_pii", "robust_lora_pii"])
def test_shipped_lm_configs_parse(name):
    """The README's recipe configs load as the recipe loads them (a typo'd key would exit 2)."""
    from genforget.cli.unlearn import UnlearnScriptArgs

    path = Path(__file__).parents[1] / "recipes" / "configs" / f"{name}.yaml"
    args, ucfg = parse_config((UnlearnScriptArgs, UnlearnConfig), ["--config", str(path)])
    assert args.model_name_or_path == "runs/demo/victim" and args.forget_data == "pii:forget"
    assert ucfg.use_lora == ("lora" in name)
    assert args.calibration_data == "pii:calibration"  # every one stops once the forget set looks unseen
    if name.startswith("robust"):
        assert ucfg.sam_rho > 0 or ucfg.quant_aware_weight > 0 or ucfg.undo_alpha > 0


def test_recipe_writes_full_model_and_run_record(victim_dir, corpus, tmp_path, capsys):
    from huggingface_hub import ModelCard

    out = tmp_path / "run"
    assert unlearn_main(_args(victim_dir, out, "--report_to", "tensorboard", "--logging_steps", "1")) == 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["method"] == "npo" and record["forget_examples"] == 6 and len(record["forget_sha256"]) == 64
    assert _leaks(out, corpus) == []
    assert not any(v in capsys.readouterr().out for v in corpus.pii_values("forget"))
    # The model card: Hub metadata, the forget set as its count and hash, the outcome's figures.
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and {"npo", "genforget"} <= set(card.data.tags)
    text = (out / "README.md").read_text()
    assert record["forget_sha256"] in text and "forget_examples: `6`" in text
    assert record["outcome"]["status"] in text and str(tmp_path) not in text
    # report_to tensorboard: per-step scalars beside the output dir, equal to the record's losses.
    logs = tmp_path / "run.logs"
    scalars = tensorboard_scalars(logs)
    losses = [(r["step"] + 1, r["loss"]) for r in record["losses"]]
    assert [s for s, _ in scalars["train/loss"]] == [s for s, _ in losses] == [1, 2, 3]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([v for _, v in losses], rel=1e-6)
    assert {"train/forget_nll", "train/retain_nll", "train/learning_rate", "guard/good_step"} <= set(scalars)
    assert scalars["train/learning_rate"][0][1] == pytest.approx(1e-3)
    assert "outcome/forget_after_extraction" in scalars
    assert _leaks(logs, corpus) == []


def test_report_to_names_a_wrong_tracker():
    with pytest.raises(ValueError, match="report_to 'tensorbord'"):
        UnlearnConfig(report_to="tensorbord")
    assert UnlearnConfig(report_to="tensorboard,wandb").report_to == "tensorboard,wandb"


def test_recipe_saves_adapter(victim_dir, corpus, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "lora"
    assert unlearn_main(_args(victim_dir, out, "--use_lora", "true", "--save_mode", "adapter")) == 0
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert card.data.base_model is None  # a local victim dir is not a Hub repo id
    assert "retain_sha256" in card.text and _leaks(out, corpus) == []


def _mismatched_model(tmp_path, tiny_lm, victim_dir) -> Path:
    from transformers import AutoTokenizer

    d = tmp_path / "mismatch"
    tiny_lm.save_pretrained(d)  # 300-token embedding
    AutoTokenizer.from_pretrained(victim_dir).save_pretrained(d)  # 512-token tokenizer
    return d


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty_forget", "holds no examples"),
        ("unknown_method", "Did you mean 'npo'"),
        ("missing_file", "not found"),
        ("mismatch", "tokenizer/model mismatch"),
        ("nonempty_out", "not empty"),
        ("adapter_without_lora", "needs --use_lora"),
    ],
)
def test_bad_inputs_exit_2_and_write_nothing(case, message, victim_dir, tiny_lm, tmp_path, capsys):
    out = tmp_path / "out"
    args = _args(victim_dir, out)
    if case == "empty_forget":
        (tmp_path / "empty.jsonl").write_text("")
        args += ["--forget_data", str(tmp_path / "empty.jsonl")]
    elif case == "unknown_method":
        args += ["--method", "npoo"]
    elif case == "missing_file":
        args += ["--forget_data", str(tmp_path / "nope.jsonl")]
    elif case == "mismatch":
        args += ["--model_name_or_path", str(_mismatched_model(tmp_path, tiny_lm, victim_dir))]
    elif case == "nonempty_out":
        out.mkdir()
        (out / "keep.txt").write_text("precious")
    elif case == "adapter_without_lora":
        args += ["--save_mode", "adapter"]
    assert unlearn_main(args) == 2
    assert message in capsys.readouterr().err
    if case == "nonempty_out":
        assert [p.name for p in out.iterdir()] == ["keep.txt"] and (
            out / "keep.txt"
        ).read_text() == "precious"
    else:
        assert not out.exists()


def test_train_victim_recipe(tmp_path, corpus):
    out = tmp_path / "v"
    argv = [
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        "--hidden_size",
        "32",
        "--intermediate_size",
        "64",
        *CORPUS_ARGS,
    ]
    assert train_victim_main(argv) == 0
    from genforget import load_model

    model, tok = load_model(out)
    assert model.config.hidden_size == 32 and tok.pad_token != tok.eos_token
    assert train_victim_main(argv) == 2  # output dir now non-empty
    assert _leaks(out, corpus) == []


def test_accelerate_launch_runs_the_recipe(victim_dir, tmp_path):
    out = tmp_path / "accel"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "recipes/accelerate/cpu.yaml"),
        "--num_cpu_threads_per_process",
        "1",
        str(ROOT / "recipes/unlearn_lm.py"),
        *_args(victim_dir, out),
    ]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "genforget_run.json").read_text())
    assert record["world_size"] == 1 and (out / "model.safetensors").is_file()


def test_demo_pipeline_small_reports_and_caches(tmp_path, corpus):
    from genforget.demos.options import DemoArgs
    from genforget.demos.pii import run_demo

    args = DemoArgs(
        output_dir=str(tmp_path / "demo"),
        n_people=20,
        n_passages=10,
        forget_frac=0.2,
        victim_preset="small",
        num_threads=2,
        relearn_speed=False,  # tested on its own in test_relearn_speed.py
    )
    ucfg = UnlearnConfig(method="npo", learning_rate=1e-3, max_steps=40)
    report = run_demo(args, ucfg)
    run = Path(args.output_dir)
    for f in ("report.json", "report.md", "report.png"):
        assert (run / f).stat().st_size > 0
    data = json.loads((run / "report.json").read_text())
    assert {"train_victim_s", "train_oracle_s", "unlearn_s"} <= set(data["timings"])
    for name in ("victim", "unlearned", "oracle"):
        for key in (
            "forget_pii_extraction",
            "retain_pii_extraction",
            "forget_verbatim_extraction",
            "retain_perplexity",
            "mia_min_k_auc",
        ):
            assert isinstance(data["models"][name][key], float)
    assert data["models"]["victim"]["forget_pii_extraction"] >= 0.9
    assert data["models"]["unlearned"]["forget_pii_extraction"] <= 0.1
    assert data["models"]["oracle"]["forget_pii_extraction"] <= 0.1
    for name in ("victim", "unlearned"):  # compared with the oracle, next to the MIA AUC
        assert isinstance(data["models"][name]["privleak"], float)
        assert isinstance(data["models"][name]["forget_quality"], float)
    names = [c["name"] for c in data["checks"]]
    assert "forget MIA min-k AUC, |unlearned - oracle|" in names
    gap = abs(data["models"]["unlearned"]["mia_min_k_auc"] - data["models"]["oracle"]["mia_min_k_auc"])
    assert data["checks"][names.index("forget MIA min-k AUC, |unlearned - oracle|")]["value"] == gap
    # the demo's own corpus (20 people), not the 200-person fixture's, is what must not leak
    demo_corpus = args.build_corpus()
    assert demo_corpus.pii_values("forget") and _leaks(run, demo_corpus) == []
    # make demo's unlearned model carries a model card a hub client parses, with no forget value
    from huggingface_hub import ModelCard

    card = ModelCard.load(run / "unlearned" / "README.md")
    assert {"genforget", "npo"} <= set(card.data.tags) and "forget" in card.text.lower()
    # ... and the demo's gating checks with their bars, as measured
    shown = json.dumps(card.data.to_dict()) + card.text
    first = data["checks"][0]
    assert first["name"] in shown and f"{first['value']}"[:5] in shown
    # Second run: victim and oracle come from the cache (same recorded training time).
    again = run_demo(args, ucfg)
    assert again["timings"]["train_victim_s"] == report["timings"]["train_victim_s"]


def test_leak_check_can_fail(tmp_path, corpus):
    value = corpus.pii_values("forget")[1]
    (tmp_path / "log.txt").write_text(f"generated: {value}")
    assert _leaks(tmp_path, corpus) == [value]


def test_train_victim_on_tofu_shaped_data_and_fine_tune_an_existing_model(tmp_path, victim_dir):
    data = tmp_path / "full.jsonl"
    rows = [{"question": f"Who is author {i}?", "answer": f"Author {i} writes poems."} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    small = ["--max_steps", "3", "--hidden_size", "32", "--intermediate_size", "64", "--vocab_size", "300"]
    assert train_victim_main(["--data", str(data), "--output_dir", str(tmp_path / "a"), *small]) == 0
    from genforget import load_model

    model, tok = load_model(tmp_path / "a")
    assert model.config.hidden_size == 32
    # fine-tune an existing model dir: its weights move, its size stays
    before, _ = load_model(victim_dir)
    argv = ["--data", str(data), "--model_name_or_path", str(victim_dir), "--output_dir", str(tmp_path / "b")]
    assert train_victim_main([*argv, "--max_steps", "2", "--learning_rate", "1e-2"]) == 0
    after, _ = load_model(tmp_path / "b")
    assert after.config.hidden_size == before.config.hidden_size
    assert not torch.equal(after.lm_head.weight, before.lm_head.weight)
    assert (
        train_victim_main(["--data", str(tmp_path / "nope.jsonl"), "--output_dir", str(tmp_path / "c")]) == 2
    )
    assert not (tmp_path / "c").exists()
