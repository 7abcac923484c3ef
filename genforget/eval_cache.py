"""Scores of the oracle and the victim, kept across ``genforget eval`` calls.

An experiment evaluates many unlearned models against the same retrained oracle and the same
victim; re-scoring those two on every call doubles or triples its cost. Their
:func:`genforget.evaluation.evaluate` results are stored as JSON (numbers only: metric values and
per-example truth ratios, never text) under a cache dir (``genforget eval --cache_dir``, default
``runs/eval-cache`` in the working directory: a user's model dirs may be read-only or shared, so
nothing is written into them). The key is the SHA-256 of:

- the model dir's files (weights, config, tokenizer, chat template), byte for byte, so a retrained
  or edited model never reads another's scores; ``genforget_run.json`` (timings) is left out;
- the suite's settings and a fingerprint of its materialised data (a changed TOFU file is a miss);
- how the model was loaded (4-bit options), the scoring code's version (:data:`CACHE_VERSION`,
  bumped when a metric's definition changes) and genforget's version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

CACHE_VERSION = 1
_SKIP = {"genforget_run.json", "train_info.json"}


def dir_sha256(path: str | Path) -> str | None:
    """SHA-256 over every file of a model dir (relative names and bytes, sorted); None for a
    path that is not a local dir (a hub id: no stable bytes to key on)."""
    root = Path(path)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _SKIP):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def data_sha256(data) -> str:
    """Fingerprint of a materialised :class:`~genforget.evaluation.suite.SuiteData` (its evaluation splits)."""
    parts = {
        "forget": dataclasses.asdict(data.forget),
        "retain": dataclasses.asdict(data.retain),
        "holdout": dataclasses.asdict(data.holdout),
        "general": {k: dataclasses.asdict(v) for k, v in data.general.items()},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _files_sha256(paths: list[str]) -> str:
    """SHA-256 over the names and contents of every file under ``paths`` (files or dirs)."""
    h = hashlib.sha256()
    for root in paths:
        p = Path(root)
        for f in sorted([p] if p.is_file() else p.rglob("*") if p.is_dir() else []):
            if f.is_file():
                h.update(str(f).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def score_key(
    model_path: str | Path, suite, data_fp: str, load: dict, reference: str | Path | None = None
) -> str | None:
    """The cache key of one model's scores on a suite, or None when the model is not a local dir.
    ``reference``: the oracle dir when the model is scored against it (the reference attack)."""
    from genforget._version import __version__

    model_fp = dir_sha256(model_path)
    ref_fp = dir_sha256(reference) if reference else None
    if model_fp is None or (reference and ref_fp is None):
        return None
    blob = {
        "reference": ref_fp,
        "cache_version": CACHE_VERSION,
        "genforget": __version__,
        "model": model_fp,
        "suite": dataclasses.asdict(suite),
        "data": data_fp,
        "load": load,
    }
    if getattr(suite, "lm_eval_include", None):
        # A user's task YAML (or the data file beside it) edited under the same name: a miss.
        blob["lm_eval_include"] = _files_sha256(suite.lm_eval_include)
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def read_scores(cache_dir: str | Path, key: str | None) -> tuple[dict, dict] | None:
    """``(results, details)`` stored under ``key``, or None."""
    if not cache_dir or key is None:
        return None
    path = Path(cache_dir) / f"{key}.json"
    if not path.is_file():
        return None
    try:
        blob = json.loads(path.read_text())
        return blob["results"], blob["details"]
    except (json.JSONDecodeError, KeyError):  # a torn or foreign file: recompute
        return None


def write_scores(cache_dir: str | Path, key: str | None, results: dict, details: dict) -> None:
    """Store ``(results, details)`` under ``key`` (written to a temp name, then renamed)."""
    if not cache_dir or key is None:
        return
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in details.items() if k != "examples"}  # never text
    tmp = root / f".{key}.tmp"
    tmp.write_text(json.dumps({"results": results, "details": keep}, sort_keys=True))
    tmp.replace(root / f"{key}.json")
