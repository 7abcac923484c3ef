"""Crash-safe outputs: a model or report dir is complete or absent (or as it was), never half-written.

The subprocess tests kill a real ``genforget unlearn`` mid-training and mid-save; the save is
held open by a wrapper that patches ``save_model`` to pause after writing the weights (the
moment a plain ``save_pretrained`` into the output dir would leave a half-written model).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genforget.io import atomic_dir

ROOT = Path(__file__).resolve().parents[1]
CORPUS_ARGS = ["--n_people", "20", "--n_passages", "10", "--forget_frac", "0.2"]

# Runs `genforget unlearn` with markers on stdout: TRAINING when training starts, SAVING once the
# weights are in the (temporary) output dir and before the tokenizer and run record are.
WRAPPER = """
import sys, time
import genforget.adapters as A, genforget.lm.trainer as T
from genforget.cli.main import main
save, train = A.save_model, T.unlearn_lm
def slow_save(*a, **k):
    mode = save(*a, **k)
    print("SAVING", flush=True)
    time.sleep(120)
    return mode
def marked_train(*a, **k):
    print("TRAINING", flush=True)
    return train(*a, **k)
A.save_model, T.unlearn_lm = slow_save, marked_train
sys.exit(main(sys.argv[1:]))
"""


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name and out.name in p.name)


def test_atomic_dir_commits_only_on_success(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise RuntimeError("crash mid-save")
    assert not out.exists() and _siblings(out) == []
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
        assert not out.exists()  # nothing visible until the block ends
    assert [p.name for p in out.iterdir()] == ["a"]
    # overwrite: a failed run leaves the old result; a good one replaces it whole
    with pytest.raises(KeyboardInterrupt), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
        raise KeyboardInterrupt
    assert [p.name for p in out.iterdir()] == ["a"]
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in out.iterdir()] == ["b"] and _siblings(out) == []
    # without overwrite a non-empty target is never replaced
    with pytest.raises(FileExistsError), atomic_dir(out) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in out.iterdir()] == ["b"] and _siblings(out) == []


def test_atomic_dir_removes_temp_dirs_of_dead_runs(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".out.tmp-{int(dead.stdout)}-abcd1234"
    stale.mkdir()
    live = tmp_path / f".out.tmp-{os.getpid()}-abcd1234"  # this process: still running, kept
    live.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert not stale.exists() and live.exists()


def _wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {marker}")
    raise AssertionError(f"no {marker} within {timeout}s")


@pytest.mark.parametrize(
    "when, sig, existing",
    [
        pytest.param("TRAINING", signal.SIGTERM, False, marks=pytest.mark.slow),
        ("SAVING", signal.SIGTERM, False),
        pytest.param("SAVING", signal.SIGKILL, True, marks=pytest.mark.slow),
    ],
)
def test_killed_recipe_leaves_output_absent_or_unchanged(victim_dir, tmp_path, when, sig, existing):
    out = tmp_path / "run"
    if existing:  # --overwrite true over a previous result: it must survive the kill intact
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"previous result")
    argv = ["unlearn", "--model_name_or_path", str(victim_dir), "--forget_data", "pii:forget"]
    argv += [
        "--retain_data",
        "pii:retain",
        "--output_dir",
        str(out),
        "--overwrite",
        "true",
        "--allow_partial",
        "true",
    ]
    argv += ["--max_steps", "100000" if when == "TRAINING" else "2", *CORPUS_ARGS]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        _wait_for(proc, when)
        if when == "TRAINING":
            time.sleep(2.0)  # inside the step loop
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc != 0
    if existing:
        assert [p.name for p in out.iterdir()] == ["model.safetensors"]
        assert (out / "model.safetensors").read_bytes() == b"previous result"
    else:
        assert not out.exists()
    if sig == signal.SIGTERM:  # caught: the temporary dir is cleaned up too
        assert _siblings(out) == []
