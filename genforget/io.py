"""Crash-safe output dirs: a command's model or report appears complete, or not at all.

:func:`atomic_dir` hands the caller a hidden temporary sibling of the output dir; only when the
``with`` block ends normally is it renamed into place (a rename within one directory is atomic on
POSIX). An exception, ``Ctrl-C`` or ``SIGTERM`` (turned into ``SystemExit`` while the block runs,
so the cleanup below runs too) removes the temporary dir and leaves the output dir absent or as it
was. A ``SIGKILL`` cannot be caught: the output dir is still absent or unchanged, and the hidden
``.<name>.tmp-<pid>-...`` sibling is left behind (removed by the next run into the same dir).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path


def _tmp_prefix(final: Path) -> str:
    return f".{final.name}.tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(final: Path) -> None:
    """Temporary siblings of ``final`` left by killed runs (their pid no longer exists)."""
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(_tmp_prefix(final) + "*"):
        pid = p.name[len(_tmp_prefix(final)) :].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within the block, ``SIGTERM`` raises ``SystemExit(143)`` (so ``finally`` clauses run) instead
    of killing the process outright. A no-op outside the main thread, where handlers can't be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def atomic_dir(final_path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary dir next to ``final_path``; on success rename it to ``final_path``.

    ``final_path`` must be absent or an empty dir, or ``overwrite`` must be set (callers check
    this up front with a usage error: :func:`genforget.cli.common.check_output_dir`). With
    ``overwrite`` the old dir is moved aside, the new one renamed in and only then the old one
    deleted, so no moment leaves a half-written dir under ``final_path``.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    tmp = final.parent / f"{_tmp_prefix(final)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with sigterm_as_exit():
            yield tmp
            _replace(tmp, final, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, final: Path, overwrite: bool) -> None:
    if final.is_dir() and any(final.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{final} became non-empty while this run was writing; kept it as it was")
        # Not a tmp- name: if the process dies between the two renames this is the only copy.
        old = final.parent / f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except BaseException:
            os.rename(old, final)  # put the previous result back
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    if final.is_dir():
        final.rmdir()  # empty: os.rename onto a non-empty dir would fail anyway
    os.rename(tmp, final)


# Weight files a loader may pick up; all but safetensors unpickle, which can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_safe_weights(
    path: str | Path, allow_pickle: bool = False, what: str = "model_name_or_path"
) -> None:
    """Refuse a local model dir whose weights exist only in a pickle format (``pytorch_model.bin``
    ...) unless ``allow_pickle``: loading a pickle runs whatever code the file names.

    Raises ``ValueError`` naming the file and the ``--allow_pickle true`` fix. Hub ids (no local
    dir) are left to the loaders, which are called with ``use_safetensors=True``.
    """
    d = Path(path)
    if not d.is_dir():
        return
    files = [p for p in d.rglob("*") if p.is_file()]
    if allow_pickle or any(p.suffix == ".safetensors" for p in files):
        return
    pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    if not pickled and (d / "config.json").is_file():
        raise ValueError(
            f"{what} {d}: no model weights (model.safetensors) next to config.json; point it at a "
            "complete save_pretrained dir"
        )
    if pickled:
        raise ValueError(
            f"{what} {d}: weights only in a pickle file ({pickled[0].name}), which can run code when "
            "loaded; convert it to safetensors, or pass --allow_pickle true if you trust its source"
        )


def check_output_dir(path: str, overwrite: bool) -> Path:
    """Refuse a missing or non-empty output dir (unless ``overwrite``) before any work is done."""
    from genforget.config import UsageError

    if not path:
        raise UsageError("output_dir is required: pass --output_dir runs/<name>")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output_dir {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"output_dir {out} is not empty; choose a new dir or pass --overwrite true")
    return out
