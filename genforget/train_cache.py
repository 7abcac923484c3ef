"""Trained models kept on disk, keyed by everything that made them, so a second run loads them.

Every demo trains a victim (and often a retrain-without oracle) that takes minutes; the bench
scripts and the concept-erasure victims reuse the same ones. :func:`train_or_load` is the one
place that decides whether a dir can be reused:

- ``<dir>/train_info.json`` holds ``{"key": ..., "seconds": ..., "files_sha256": ...}``. The key
  is a JSON-able dict of what made the model (config, and the SHA-256 of the training data itself,
  not only the arguments that should produce it): any change is a miss and the model is retrained.
- ``files_sha256`` is the SHA-256 of the dir's other files: a model edited, half-copied or
  overwritten by hand since it was trained is a miss too, not silently reused.
- the dir is written atomically (:func:`genforget.io.atomic_dir`): a run killed while saving leaves
  the previous dir or none, never a half-written one that a later run would take as trained.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from genforget.eval_cache import dir_sha256
from genforget.io import atomic_dir

INFO = "train_info.json"
T = TypeVar("T")


def texts_sha256(texts: Iterable[str], sep: str = "\n") -> str:
    """SHA-256 of ``texts`` joined by ``sep``: the training data's content as a cache key part."""
    return hashlib.sha256(sep.join(texts).encode()).hexdigest()


def cached_info(out: str | Path, key: dict) -> dict | None:
    """The ``train_info.json`` of ``out`` when it was trained with ``key`` and its files are
    unchanged since; else None."""
    out = Path(out)
    path = out / INFO
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if info.get("key") != key or info.get("files_sha256") != dir_sha256(out):
        return None
    return info


def train_or_load(
    out: str | Path,
    key: dict,
    train: Callable[[], tuple[T, dict]],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    *,
    reload: bool = False,
) -> tuple[T, dict]:
    """``load(out)`` when ``out`` holds a model trained with ``key`` (:func:`cached_info`); else
    ``train()``, ``save(model, tmp)`` into a fresh dir renamed onto ``out`` once complete, and the
    trained model (``reload``: the one read back from ``out``, for callers that must use what was
    saved). ``train`` returns ``(model, info)``; ``info["seconds"]`` is measured here when it does
    not set it. Returns ``(model, info)`` with ``info["cached"]``: whether it came from ``out``."""
    out = Path(out)
    info = cached_info(out, key)
    if info is not None:
        return load(out), {**info, "cached": True}
    t0 = time.perf_counter()
    model, made = train()
    info = {"key": key, "seconds": time.perf_counter() - t0, **made}
    with atomic_dir(out, overwrite=True) as tmp:
        save(model, tmp)
        info["files_sha256"] = dir_sha256(tmp)
        (tmp / INFO).write_text(json.dumps(info, indent=2) + "\n")
    return (load(out) if reload else model), {**info, "cached": False}
