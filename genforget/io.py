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
