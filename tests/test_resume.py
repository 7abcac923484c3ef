"""Checkpoint and resume (issue 14): a run interrupted after step k and resumed ends bit-identical
to an uninterrupted run of the same config, with the calibrated stop and the divergence guard on.

- full-parameter NPO through the API, interrupted by an exception right after a save; the stop
  (collateral watch) fires after the resume point and restores weights kept after it;
- LoRA NPO (dropout on) through the recipe, a real process SIGKILLed in the middle of writing its
  second checkpoint: ``resume_from auto`` skips the half-written one and resumes from the first;
- RMU (its prepare() draws a random control vector): the rebuilt method state matches.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genforget
import genforget.lm.safeguards.checkpoint as ck
from genforget.cli.main import main

REPO = Path(__file__).resolve().parents[1]


class _Interrupted(Exception):
    pass


def _interrupt_after(monkeypatch, k: int) -> None:
    """Make the run die right after its checkpoint of step ``k`` is in place."""
    save = ck.Checkpointer.save

    def save_then_die(self, step):
        path = save(self, step)
        if step == k:
            raise _Interrupted
        return path

    monkeypatch.setattr(ck.Checkpointer, "save", save_then_die)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rows(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def _api_run(model, tok, corpus, **config):
    return genforget.unlearn(
        copy.deepcopy(model),
        tok,
        corpus.unlearn_examples("forget"),
        corpus.full_text_examples("retain"),
        return_history=True,
        batch_size=2,
        divergence_every=2,
        **config,
    )


@pytest.mark.parametrize(
    "method, config, k",
    [
        # The collateral watch (calibration=None: shape twins + other people's targets) trips after
        # the resume point 2, backs off, and the run ends on the weights of step 3 (kept across
        # the resume): what the resumed run must reproduce bit for bit.
        ("npo", {"learning_rate": 2e-4, "max_steps": 6, "calibration_every": 1}, 2),
        ("rmu", {"learning_rate": 1e-3, "max_steps": 4, "calibration": False}, 2),
    ],
)
def test_interrupted_run_resumes_bit_identical(victim, corpus, tmp_path, monkeypatch, method, config, k):
    model, tok = victim
    ref = _api_run(model, tok, corpus, method=method, **config)
    if method == "npo":
        stopped = [r for r in ref.history if r.get("stopped")]
        assert len(stopped) == 1 and stopped[0]["stop_reason"].startswith("collateral"), stopped
        assert stopped[0]["restored_step"] == 3 > k

    ckdir = tmp_path / "ck"
    run = {"method": method, "save_every": k, "checkpoint_dir": str(ckdir), **config}
    _interrupt_after(monkeypatch, k)
    with pytest.raises(_Interrupted):
        _api_run(model, tok, corpus, **run)
    monkeypatch.undo()
    saved = ck.list_checkpoints(ckdir)
    assert [p.name for p in saved] == [f"checkpoint-{k:06d}"]
    assert sorted(f.name for f in saved[0].iterdir()) == [
        "genforget_checkpoint.json",
        "state.safetensors",
        "weights.safetensors",
    ]

    # A checkpoint of another config, or another starting model, is refused by name.
    with pytest.raises(ValueError, match="learning_rate=.*resume with the same learning_rate"):
        _api_run(model, tok, corpus, **{**run, "learning_rate": 0.5, "resume_from": "auto"})
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1.0
    with pytest.raises(ValueError, match="the model differs"):
        _api_run(other, tok, corpus, **run, resume_from="auto")

    keep = method == "rmu"  # the other case checks the default: deleted after success
    out = _api_run(model, tok, corpus, **run, resume_from="auto", keep_checkpoints=keep)
    a, b = _state(ref.model), _state(out.model)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert _rows(out.history) == _rows(ref.history)
    # Deleted after success (partially-unlearned weights hold the forget set) unless kept.
    assert [p.name for p in ck.list_checkpoints(ckdir)] == ([f"checkpoint-{k:06d}"] if keep else [])
    assert ckdir.exists() == keep


DRIVER = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import genforget.lm.safeguards.checkpoint as ck
    calls = []
    real = ck.save_file

    def save_file(tensors, path):  # dies once the second checkpoint's weights are on disk
        real(tensors, path)
        calls.append(path)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    ck.save_file = save_file
    sys.argv = ["recipes/unlearn_lm.py", *sys.argv[1:]]
    runpy.run_path("recipes/unlearn_lm.py", run_name="__main__")
    """
)


def test_lora_recipe_killed_mid_save_resumes_bit_identical(victim_dir, tmp_path, capsys):
    corpus = ["--n_people", "20", "--n_passages", "10", "--forget_frac", "0.2", "--corpus_seed", "0"]
    args = [
        "--model_name_or_path", str(victim_dir), "--forget_data", "pii:forget", "--retain_data", "pii:retain",
        "--calibration_data", "pii:calibration", "--calibration_every", "2", "--divergence_every", "2",
        "--method", "npo", "--use_lora", "true", "--lora_dropout", "0.1", "--learning_rate", "3e-3",
        "--max_steps", "6", "--batch_size", "2", "--num_threads", "1", "--allow_partial", "true", *corpus,
    ]  # fmt: skip
    assert main(["unlearn", *args, "--output_dir", str(tmp_path / "ref")]) == 0

    out, ckdir = tmp_path / "out", tmp_path / "out.checkpoints"
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, *args, "--output_dir", str(out), "--save_every", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert not out.exists()
    assert [p.name for p in ck.list_checkpoints(ckdir)] == ["checkpoint-000002"]
    (half,) = [p for p in ckdir.iterdir() if p.name.startswith(".checkpoint-000004.tmp-")]
    assert [f.name for f in half.iterdir()] == ["weights.safetensors"]  # the kill came mid-save

    at_k = {
        n.replace(".default", ""): v
        for n, v in load_file(ckdir / "checkpoint-000002" / "weights.safetensors").items()
    }
    capsys.readouterr()
    assert (
        main(["unlearn", *args, "--output_dir", str(out), "--save_every", "2", "--resume_from", "auto"]) == 0
    )
    assert f"resumed from {ckdir / 'checkpoint-000002'} at step 2" in capsys.readouterr().out
    ref, got = (load_file(d / "adapter_model.safetensors") for d in (tmp_path / "ref", out))
    assert ref.keys() == got.keys() and all(torch.equal(ref[n], got[n]) for n in ref)
    assert at_k.keys() == got.keys() and any(not torch.equal(at_k[n], got[n]) for n in got)  # trained on
    assert not ckdir.exists()  # removed after the output was saved, the half-written one too
    runs = [
        json.loads((d / "genforget_run.json").read_text())["resumed_from"] for d in (tmp_path / "ref", out)
    ]
    assert runs == [None, "checkpoint-000002"]
