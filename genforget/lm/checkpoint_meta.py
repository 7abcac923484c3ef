"""Checkpoint names, metadata and the checks a resume passes before any work.

See :mod:`genforget.lm.safeguards.checkpoint` for what a checkpoint holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from genforget.data.loaders import fingerprint

FORMAT = 4  # 2: per-process shards of sharded runs; 3: collateral watch by extraction, back-offs;
# 4: one snapshot store for the guard and the collateral watch
META = "genforget_checkpoint.json"
PREFIX = "checkpoint-"
# Fields that may differ between an interrupted run and its resumption: none changes a step.
RESUMABLE_CHANGES = (
    "max_steps",
    "logging_steps",
    "save_every",
    "resume_from",
    "checkpoint_dir",
    "keep_checkpoints",
    "report_to",
    "logging_dir",
)


def engine_key(accelerator) -> str:
    """The engine a sharded checkpoint must resume on: ``FSDP2``, ``DEEPSPEED-ZeRO3``, ..."""
    dt = accelerator.distributed_type.value
    if dt == "FSDP":
        return f"FSDP{accelerator.state.fsdp_plugin.fsdp_version}"
    if dt == "DEEPSPEED":
        return f"DEEPSPEED-ZeRO{accelerator.state.deepspeed_plugin.zero_stage}"
    return dt


def checkpoint_name(step: int) -> str:
    """``checkpoint-000020``: the step count only."""
    return f"{PREFIX}{step:06d}"


def _step_of(p: Path) -> int | None:
    tail = p.name[len(PREFIX) :]
    return int(tail) if p.name.startswith(PREFIX) and tail.isdigit() else None


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary dirs of a killed save are
    hidden ``.checkpoint-...tmp-...`` names and never listed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _step_of(p) is not None and (p / META).is_file()]
    return sorted(found, key=_step_of)


def checkpoint_root(config) -> Path | None:
    """Where this run's checkpoints go: ``checkpoint_dir``, else the dir holding ``resume_from``."""
    if config.checkpoint_dir:
        return Path(config.checkpoint_dir)
    if config.resume_from not in ("", "auto"):
        return Path(config.resume_from).parent
    return None


def data_fingerprints(forget, retain=None, calibration=None, collateral=None) -> dict[str, str]:
    """SHA-256 of each data set the loop reads (a checkpoint records them, never the data)."""
    sets = {"forget": forget, "retain": retain, "calibration": calibration, "collateral": collateral}
    return {k: fingerprint(list(v or [])) for k, v in sets.items()}


@torch.no_grad()
def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the parameter names, shapes and first 1024 values of each: a cheap check that
    a resume starts from the same model (the full weights of a large model would take long)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
        h.update(p.detach().reshape(-1)[:1024].float().cpu().numpy().tobytes())
    return h.hexdigest()


def read_meta(path: Path) -> dict:
    """The checkpoint's JSON; a missing or unreadable one is a ``ValueError`` naming the dir."""
    if not (path / META).is_file():
        raise ValueError(
            f"resume_from {path}: not a genforget checkpoint (no {META}); pass a checkpoint-NNNNNN dir "
            "written with --save_every, or auto"
        )
    try:
        return json.loads((path / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"resume_from {path}: {META} is corrupt ({e}); resume from another checkpoint"
        ) from e


def check_resume(config, forget, retain=None, calibration=None, collateral=None) -> Path | None:
    """Check ``save_every``/``resume_from`` before any work; returns the checkpoint to resume
    from (None: start fresh). Raises ``ValueError`` naming the field and the fix."""
    if not (config.save_every or config.resume_from):
        return None
    if checkpoint_root(config) is None:
        raise ValueError(
            "save_every / resume_from auto need checkpoint_dir (the CLI's default is <output_dir>.checkpoints)"
        )
    if config.resume_from == "auto":
        found = list_checkpoints(checkpoint_root(config))
        path = found[-1] if found else None
    elif config.resume_from:
        path = Path(config.resume_from)
        if not path.is_dir():
            raise ValueError(
                f"resume_from {path}: no such checkpoint dir; pass a checkpoint-NNNNNN dir, or auto"
            )
    else:
        return None
    if path is not None:
        check_compatible(
            path, read_meta(path), config, data_fingerprints(forget, retain, calibration, collateral)
        )
    return path


def check_compatible(path: Path, meta: dict, config, fingerprints: dict, model_fp: str | None = None) -> None:
    """Refuse a checkpoint of another config, data or starting model (``ValueError`` naming it)."""
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"resume_from {path}: checkpoint format {meta.get('format')!r}, this version reads {FORMAT}"
        )
    now = dataclasses.asdict(config)
    for key in sorted(set(now) | set(meta["config"])):
        if key not in RESUMABLE_CHANGES and meta["config"].get(key) != now.get(key):
            raise ValueError(
                f"resume_from {path}: the checkpoint was written with {key}={meta['config'].get(key)!r}, this "
                f"run has {key}={now.get(key)!r}; resume with the same {key}, or start fresh without resume_from"
            )
    if config.max_steps < meta["step"]:
        raise ValueError(
            f"resume_from {path}: max_steps {config.max_steps} is below the checkpoint's step {meta['step']}; "
            "raise max_steps or resume from an earlier checkpoint"
        )
    for name, fp in meta["fingerprints"].items():
        if fingerprints.get(name) != fp:
            raise ValueError(
                f"resume_from {path}: the {name} data differ from the checkpoint's (sha256 {fp[:12]} there, "
                f"{str(fingerprints.get(name))[:12]} here); resume on the same {name} data or start fresh"
            )
    if model_fp is not None and meta.get("model") != model_fp:
        raise ValueError(
            f"resume_from {path}: the model differs from the one the checkpoint's run started from; pass the "
            "same model_name_or_path (the original, not an unlearned one) or start fresh"
        )
