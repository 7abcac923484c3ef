"""The bad-input table (notes/README_reliability.md): every row is a usage error that exits 2 with
one ``error:`` line naming the field or file:line and the fix, no traceback, and writes nothing.

Each row runs ``genforget.cli.main.main`` in-process on a tiny random model saved once per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genforget.cli.main import main
from genforget.lm.victim import VictimConfig, build_model

GOOD = [{"text": "Alice Smith lives at 12 Oak Road.", "spans": [[20, 31]]}] * 3


@pytest.fixture(scope="module")
def lm_dir(tokenizer, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm")
    torch.manual_seed(0)
    build_model(
        VictimConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4), tokenizer
    ).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


def _jsonl(path: Path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _copy_model(lm_dir: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(lm_dir, dst)
    return dst


def _diffusion_dir(tmp: Path) -> Path:
    """A class-model layout (unet/config.json + scheduler/) without training: only its shape matters."""
    d = tmp / "diff"
    (d / "unet").mkdir(parents=True)
    (d / "scheduler").mkdir()
    (d / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    (d / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return d


def _unlearn(
    t: Path, lm: Path, forget: str | None = None, *extra: str, model: Path | None = None
) -> list[str]:
    forget = forget or _jsonl(t / "good.jsonl", GOOD)
    return ["unlearn", "--model_name_or_path", str(model or lm), "--forget_data", forget,
            "--output_dir", str(t / "out"), "--max_steps", "1", *extra]  # fmt: skip


def _no_pad(t: Path, lm: Path) -> Path:
    d = _copy_model(lm, t / "nopad")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["pad_token"] = None
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok = json.loads((d / "tokenizer.json").read_text())
    tok["added_tokens"] = [a for a in tok["added_tokens"] if a["content"] != "<pad>"]
    (d / "tokenizer.json").write_text(json.dumps(tok))
    (d / "special_tokens_map.json").unlink(missing_ok=True)
    return d


def _pickle_only(t: Path, lm: Path) -> Path:
    d = _copy_model(lm, t / "pickled")
    from safetensors.torch import load_file

    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    return d


def _yaml(t: Path, text: str) -> str:
    (t / "c.yaml").write_text(text)
    return str(t / "c.yaml")


# id -> (argv builder (tmp, lm_dir) -> argv, substring the error line must hold)
ROWS = {
    "jsonl_malformed": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [GOOD[0], "{bad"])), "f.jsonl:2: not valid JSON"),
    "jsonl_binary": (lambda t, m: _unlearn(t, m, str(_bytes(t / "f.jsonl", b"\x00\xff\xfe\x80\n"))), "f.jsonl:1: not UTF-8"),
    "jsonl_not_object": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", ["[1, 2]"])), "f.jsonl:1: expected an object"),
    "jsonl_wrong_keys": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"txt": "a b"}])), "f.jsonl:1: expected an object with 'text'"),
    "jsonl_wrong_type": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"text": 5}])), "f.jsonl:1: 'text' must be a string"),
    "jsonl_whitespace_text": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"text": "  \t "}])), "f.jsonl:1: text is empty or whitespace"),
    "jsonl_whitespace_answer": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"question": " ", "answer": ""}])), "f.jsonl:1: question+answer is empty"),
    "span_out_of_range": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"text": "abc def", "spans": [[4, 40]]}])), "f.jsonl:1: span [4, 40] is out of range"),
    "span_reversed": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"text": "abc def", "spans": [[5, 2]]}])), "f.jsonl:1: span [5, 2] is out of range"),
    "span_malformed": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"text": "abc def", "spans": [["a", 2]]}])), "is not a [start, end] pair"),
    "span_not_list": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", [{"text": "abc def", "spans": 3}])), "'spans' must be a non-empty list"),
    "target_truncated_away": (lambda t, m: _unlearn(t, m, None, "--max_length", "3"), "forget example 0: example has no target token left"),
    "empty_split": (lambda t, m: _unlearn(t, m, _jsonl(t / "f.jsonl", ["", "  "])), "holds no examples"),
    "missing_data_file": (lambda t, m: _unlearn(t, m, str(t / "nope.jsonl")), "data file not found"),
    "missing_model_dir": (lambda t, m: _unlearn(t, m, model=t / "no_model"), "model directory not found"),
    "model_path_is_file": (lambda t, m: _unlearn(t, m, model=_bytes(t / "m.bin", b"x")), "is a file; expected a model directory"),
    "corrupt_model_config": (lambda t, m: _unlearn(t, m, model=_corrupt_config(t, m)), "config.json"),
    "model_dir_without_weights": (lambda t, m: _unlearn(t, m, model=_no_weights(t, m)), "no model weights"),
    "pickle_weights_refused": (lambda t, m: _unlearn(t, m, model=_pickle_only(t, m)), "--allow_pickle true"),
    "lora_targets_missing": (lambda t, m: _unlearn(t, m, None, "--use_lora", "true", "--lora_target_modules", "c_attn"), "lora_target_modules"),
    "learning_rate_zero": (lambda t, m: _unlearn(t, m, None, "--learning_rate", "0"), "learning_rate must be > 0"),
    "max_steps_zero": (lambda t, m: _unlearn(t, m, None, "--max_steps", "0"), "max_steps must be >= 1"),
    "lora_dropout_range": (lambda t, m: _unlearn(t, m, None, "--lora_dropout", "1.5"), "lora_dropout must be in [0, 1)"),
    "int_field_not_int": (lambda t, m: _unlearn(t, m, None, "--batch_size", "eight"), "--batch_size"),
    "unknown_option": (lambda t, m: _unlearn(t, m, None, "--lerning_rate", "1"), "Did you mean 'learning_rate'"),
    "unknown_method": (lambda t, m: _unlearn(t, m, None, "--method", "npoo"), "npoo"),
    "diffusion_method_on_lm": (lambda t, m: _unlearn(t, m, None, "--method", "esd"), "not language models"),
    "yaml_not_mapping": (lambda t, m: _unlearn(t, m, None, "--config", _yaml(t, "- a\n- b\n")), "expected a mapping"),
    "yaml_unknown_key": (lambda t, m: _unlearn(t, m, None, "--config", _yaml(t, "lerning_rate: 1\n")), "c.yaml: unknown key 'lerning_rate'"),
    "yaml_syntax_error": (lambda t, m: _unlearn(t, m, None, "--config", _yaml(t, "a: 1\nb: [1, 2\n")), "c.yaml:3"),
    "yaml_missing": (lambda t, m: _unlearn(t, m, None, "--config", str(t / "none.yaml")), "file not found"),
    "output_dir_not_empty": (lambda t, m: _unlearn(t, m, None) if _bytes(t / "out" / "keep", b"x") else [], "not empty"),
    "output_dir_is_file": (lambda t, m: _unlearn(t, m, None) if _bytes(t / "out", b"x") else [], "is a file"),
    "output_dir_missing": (lambda t, m: [a for a in _unlearn(t, m, None) if a not in ("--output_dir", str(t / "out"))], "output_dir is required"),
    "adapter_without_lora": (lambda t, m: _unlearn(t, m, None, "--save_mode", "adapter"), "needs --use_lora"),
    "diffusion_model_to_lm": (lambda t, m: _unlearn(t, m, model=_diffusion_dir(t)), "diffusion model"),
    "lm_model_to_diffusion": (lambda t, m: ["unlearn-diffusion", "--model_name_or_path", str(m), "--erase_class", "1", "--output_dir", str(t / "out")], "not a class-conditional diffusion model"),
    "eval_without_model": (lambda t, m: ["eval", "--output_dir", str(t / "out")], "--model is required"),
    "eval_unknown_suite": (lambda t, m: ["eval", "--model", str(m), "--suite", "nosuch", "--output_dir", str(t / "out")], "nosuch"),
    "victim_bad_split": (lambda t, m: ["train-victim", "--splits", "holdout", "--output_dir", str(t / "out")], "splits must be among"),
    "accelerate_bad_mixed_precision": (lambda t, m: _unlearn(t, m, None), "ACCELERATE_MIXED_PRECISION='fp17' is not one of"),
    "save_every_negative": (lambda t, m: _unlearn(t, m, None, "--save_every", "-1"), "save_every must be >= 0"),
    "resume_from_missing_dir": (lambda t, m: _unlearn(t, m, None, "--resume_from", str(t / "nock")), "no such checkpoint dir"),
    "resume_from_not_a_checkpoint": (lambda t, m: _unlearn(t, m, None, "--resume_from", str(_bytes(t / "ck" / "x", b"x").parent)), "not a genforget checkpoint"),
    "resume_from_corrupt_checkpoint": (lambda t, m: _unlearn(t, m, None, "--resume_from", _checkpoint(t, meta="{")), "genforget_checkpoint.json is corrupt"),
    "resume_from_other_config": (lambda t, m: _unlearn(t, m, None, "--resume_from", _checkpoint(t, learning_rate=0.5)), "written with learning_rate=0.5, this run has learning_rate=0.001"),
    "resume_from_other_data": (lambda t, m: _unlearn(t, m, None, "--resume_from", _checkpoint(t)), "the forget data differ from the checkpoint's"),
    "diffusion_save_every": (lambda t, m: ["unlearn-diffusion", "--model_name_or_path", str(m), "--erase_class", "1", "--output_dir", str(t / "out"), "--save_every", "2"], "checkpoint and resume is LM-only"),
}  # fmt: skip


def _checkpoint(t: Path, meta: str | None = None, **config) -> str:
    """A checkpoint dir whose JSON differs from the run in ``config`` (else in its forget data)."""
    import dataclasses

    from genforget.config import UnlearnConfig
    from genforget.lm.safeguards.checkpoint import FORMAT, META

    d = t / "ck" / "checkpoint-000001"
    d.mkdir(parents=True)
    fps = {k: "0" * 64 for k in ("forget", "retain", "calibration", "collateral")}
    cfg = {**dataclasses.asdict(UnlearnConfig()), **config}
    (d / META).write_text(
        meta or json.dumps({"format": FORMAT, "step": 1, "config": cfg, "fingerprints": fps})
    )
    return str(d)


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _corrupt_config(t: Path, lm: Path) -> Path:
    d = _copy_model(lm, t / "corrupt")
    (d / "config.json").write_text('{"model_type": "llama", ')
    return d


def _no_weights(t: Path, lm: Path) -> Path:
    d = _copy_model(lm, t / "noweights")
    (d / "model.safetensors").unlink()
    return d


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_exits_2_with_one_error_line(row, lm_dir, tmp_path, capsys, monkeypatch):
    build, expected = ROWS[row]
    if row == "accelerate_bad_mixed_precision":
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp17")
    argv = build(tmp_path, lm_dir)
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed


def test_internal_error_is_one_line_and_a_saved_traceback(lm_dir, tmp_path, capsys, monkeypatch):
    import genforget.lm.trainer as trainer

    def boom(*a, **k):
        raise RuntimeError("secret example text")

    monkeypatch.setattr(trainer, "unlearn_lm", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(_unlearn(tmp_path, lm_dir)) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "RuntimeError" in err and "secret" not in err
    saved = list((tmp_path / "tmp").glob("genforget-unlearn-crash-*.txt"))
    assert len(saved) == 1 and "secret example text" in saved[0].read_text()
    assert not (tmp_path / "out").exists()


def test_long_examples_are_truncated_with_a_warning(tokenizer):
    from genforget.lm.data import tokenize_all

    rows = [{"text": "Alice Smith lives at 12 Oak Road. " * 20}, {"text": "short"}]
    with pytest.warns(UserWarning, match="1 forget example"):
        feats = tokenize_all(rows, tokenizer, 16, "forget")
    assert [len(f["input_ids"]) for f in feats][0] == 16 and feats[1]["idx"] == 1


def test_pickle_only_model_loads_with_allow_pickle(lm_dir, tmp_path):
    from genforget.api import load_model

    d = _pickle_only(tmp_path, lm_dir)
    with pytest.raises(ValueError, match="--allow_pickle true"):
        load_model(d)
    model, _ = load_model(d, allow_pickle=True)
    ref, _ = load_model(lm_dir)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True)
    )
