"""Checkpoint and resume for the LM unlearning loop (issue 14): ``save_every``, ``resume_from``.

A checkpoint is a directory ``<checkpoint_dir>/checkpoint-NNNNNN`` (N = optimizer steps done; the
name holds nothing else, so no data can leak through it) with three files:

- ``weights.safetensors``: the trainable parameters (a LoRA run: only the adapter);
- ``state.safetensors``: every other tensor: AdamW state, the torch CPU/CUDA RNG states and the
  data loaders' generator, the calibrated stop's per-example values and last good weights, the
  divergence guard's snapshot (weights + optimizer);
- ``genforget_checkpoint.json``: scalars: the step, the config, SHA-256 fingerprints of the data
  and of the starting model, the history rows so far, the optimizer's param groups, Python and
  NumPy RNG states, the stop's and the guard's numbers.

Nothing is unpickled on resume. There is no LR scheduler in the loop (constant learning rate),
so there is no scheduler state. Each checkpoint is written into a hidden temporary sibling and
renamed into place (:func:`genforget.io.atomic_dir`), so a kill mid-save leaves the previous
checkpoint intact and ``resume_from auto`` never sees a half-written one; once a new checkpoint
is in place the older ones are deleted (a resume needs only the latest).

Why not ``accelerate``'s ``save_state``/``load_state``: it stores the whole model (a LoRA run
would write the frozen base at every checkpoint), the optimizer and RNG states as pickles, and
no position for a plain shuffled DataLoader (only for its ``SeedableRandomSampler`` or a stateful
loader); the calibrated stop and the guard would still need a format of their own. The data
position is reproduced exactly instead: on resume the loaders are rebuilt from the seed and the
batches already consumed are drawn again without computing anything (collating only), which
also leaves the generator they share in the saved state (checked).

Everything that is not saved is rebuilt deterministically from the seed and the starting model
before the saved state is put back: the method's ``prepare`` (refusal texts, RMU's control
vector, WHP's reinforced model), the cached reference log-probs, the LoRA initialisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from genforget.data.loaders import fingerprint
from genforget.io import _pid_alive, atomic_dir

FORMAT = 2  # 2: collateral watch by extraction (3-tuples), back-offs
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
)


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


def _flatten_opt(sd: dict, prefix: str, tensors: dict) -> dict:
    """An optimizer state dict as safetensors entries (into ``tensors``) + JSON (returned)."""
    keys, scalars = {}, {}
    for i, st in sd["state"].items():
        keys[str(i)] = [k for k, v in st.items() if torch.is_tensor(v)]
        scalars[str(i)] = {k: v for k, v in st.items() if not torch.is_tensor(v)}
        for k in keys[str(i)]:
            tensors[f"{prefix}.{i}.{k}"] = st[k].detach().cpu().contiguous()
    return {"param_groups": sd["param_groups"], "tensor_keys": keys, "scalars": scalars}


def _unflatten_opt(meta: dict, prefix: str, tensors: dict) -> dict:
    state = {int(i): {k: tensors[f"{prefix}.{i}.{k}"] for k in ks} for i, ks in meta["tensor_keys"].items()}
    for i, d in meta["scalars"].items():
        state[int(i)].update(d)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


class Checkpointer:
    """The loop's checkpoint hooks; every method is a no-op when ``save_every`` and
    ``resume_from`` are both unset.

    Built before anything is prepared (checks the config and data against the checkpoint),
    :meth:`resume` after the optimizer, stop and guard exist, :meth:`due`/:meth:`save` after
    each step, :meth:`finish` when the run ends well.
    """

    def __init__(self, config, accelerator, model, forget, retain=None, calibration=None, collateral=None):
        from accelerate import DistributedType

        self.config, self.acc = config, accelerator
        self.active = bool(config.save_every or config.resume_from)
        self.path: Path | None = None
        if not self.active:
            return
        if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            raise ValueError(
                "save_every / resume_from support single-process and DDP runs; under FSDP or DeepSpeed the "
                "optimizer is sharded: unset them, or run without sharding"
            )
        self.root = checkpoint_root(config)
        self.path = check_resume(config, forget, retain, calibration, collateral)
        self.fingerprints = data_fingerprints(forget, retain, calibration, collateral)
        self.model_fp = model_fingerprint(model)
        if self.path is not None:
            check_compatible(self.path, read_meta(self.path), config, self.fingerprints, self.model_fp)
        elif config.resume_from == "auto":
            accelerator.print(f"resume_from auto: no checkpoint in {self.root}; starting from step 0")

    def resume(self, raw, params, opt, g, iters, stop=None, guard=None, history=None) -> int:
        """Bind the loop's state; when resuming, put the checkpoint's state back and draw the
        batches already consumed. Returns the step to continue from (0: a fresh run)."""
        self.raw, self.params, self.opt, self.g, self.stop, self.guard = raw, params, opt, g, stop, guard
        self.history, self.n0 = history, len(history) if history is not None else 0
        self.names = {id(p): n for n, p in raw.named_parameters()}
        if self.path is None:
            return 0
        meta = read_meta(self.path)
        weights = load_file(self.path / "weights.safetensors")
        t = load_file(self.path / "state.safetensors")
        with torch.no_grad():
            for p in params:
                p.copy_(weights[self.names[id(p)]].to(p.device))
        opt.load_state_dict(_unflatten_opt(meta["optimizer"], "opt", t))
        if stop is not None:
            s = meta["stop"]
            stop.latest = t["stop.latest"]
            stop.calib_value, stop.calib_step = s["calib_value"], s["calib_step"]
            stop.history = [tuple(h) for h in s["history"]]
            stop.collateral_base = s["collateral_base"]
            stop.collateral_history = [tuple(h) for h in s["collateral_history"]]
            for key in (
                "backoffs",
                "over",
                "in_bound",
                "good",
                "forgotten_good",
                "repairing",
                "repair_steps",
            ):
                setattr(stop, key, s[key])
            stop.forget_extraction, stop.retain_boost = s["forget_extraction"], s["retain_boost"]
            stop.last_good_step = s["last_good_step"]
            stop.last_good = (
                None if s["last_good"] is None else [t[f"stop.last_good.{i}"] for i in range(s["last_good"])]
            )
        if guard is not None:
            gm = meta["guard"]
            guard.start, guard.good_step, guard.events = gm["start"], gm["good_step"], gm["events"]
            snap = [t[f"guard.params.{i}"] for i in range(gm["n_params"])]
            guard.snapshot = (snap, _unflatten_opt(gm["optimizer"], "guard.opt", t))
        if history is not None:
            history.extend(meta["history"])
        step = meta["step"]
        for _ in range(step):  # the data position: the same batches, drawn again, not computed
            for it in iters:
                if it is not None:
                    next(it)
        if not torch.equal(g.get_state(), t["rng.data"]):
            raise RuntimeError(f"resume_from {self.path}: the data order did not replay to the saved state")
        self._set_rng(meta["rng"], t)
        self.acc.print(f"resumed from {self.path} at step {step}")
        return step

    def due(self, step: int) -> bool:
        """Whether a checkpoint is written after ``step`` steps (never after the last one)."""
        return (
            bool(self.config.save_every)
            and step % self.config.save_every == 0
            and step < self.config.max_steps
        )

    def save(self, step: int) -> Path:
        """Write ``checkpoint-<step>`` atomically (main process), then drop the older ones."""
        final = self.root / checkpoint_name(step)
        if self.acc.is_main_process:
            tensors, meta = self._state(step)
            weights = {self.names[id(p)]: p.detach().cpu().contiguous() for p in self.params}
            with atomic_dir(final, overwrite=True) as tmp:
                save_file(weights, tmp / "weights.safetensors")
                save_file(tensors, tmp / "state.safetensors")
                (tmp / META).write_text(json.dumps(meta) + "\n")  # last: the marker of a complete save
            for old in list_checkpoints(self.root):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        return final

    def finish(self) -> None:
        """After a successful run: delete this run's checkpoints unless ``keep_checkpoints``
        (they are partially-unlearned weights that still hold the forget set). Only
        ``checkpoint-NNNNNN`` dirs and their temporary siblings are removed, then the dir if empty."""
        if self.active and not self.config.keep_checkpoints and self.acc.is_main_process:
            remove_checkpoints(self.root)

    def _state(self, step: int) -> tuple[dict, dict]:
        tensors: dict[str, torch.Tensor] = {}
        meta = {
            "format": FORMAT,
            "step": step,
            "config": dataclasses.asdict(self.config),
            "fingerprints": self.fingerprints,
            "model": self.model_fp,
            "history": self.history[self.n0 :] if self.history is not None else [],
            "optimizer": _flatten_opt(self.opt.state_dict(), "opt", tensors),
            "rng": self._rng(tensors),
        }
        if self.stop is not None:
            s = self.stop
            tensors["stop.latest"] = s.latest.clone()
            for i, w in enumerate(s.last_good or []):
                tensors[f"stop.last_good.{i}"] = w.contiguous()
            meta["stop"] = {
                "calib_value": s.calib_value,
                "calib_step": s.calib_step,
                "history": s.history,
                "collateral_base": s.collateral_base,
                "collateral_history": s.collateral_history,
                **{k: getattr(s, k) for k in ("backoffs", "over", "in_bound", "good", "forgotten_good")},
                **{
                    k: getattr(s, k)
                    for k in ("repairing", "repair_steps", "forget_extraction", "retain_boost")
                },
                "last_good_step": s.last_good_step,
                "last_good": None if s.last_good is None else len(s.last_good),
            }
        if self.guard is not None:
            snap_params, snap_opt = self.guard.snapshot
            for i, w in enumerate(snap_params):
                tensors[f"guard.params.{i}"] = w.contiguous()
            meta["guard"] = {
                "start": self.guard.start,
                "good_step": self.guard.good_step,
                "events": self.guard.events,
                "n_params": len(snap_params),
                "optimizer": _flatten_opt(snap_opt, "guard.opt", tensors),
            }
        return tensors, meta

    def _rng(self, tensors: dict) -> dict:
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.data"] = self.g.get_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        for i, s in enumerate(cuda):
            tensors[f"rng.cuda.{i}"] = s
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "python": list(random.getstate()),
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "cuda": len(cuda),
        }

    def _set_rng(self, rng: dict, tensors: dict) -> None:
        version, state, gauss = rng["python"]
        random.setstate((version, tuple(state), gauss))
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(tensors["rng.torch"])
        if rng["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == rng["cuda"]:
            torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(rng["cuda"])])


def remove_checkpoints(root: str | Path | None) -> None:
    """Delete the ``checkpoint-NNNNNN`` dirs under ``root`` (and temporary ones left by killed
    saves), then ``root`` itself if nothing else is in it. Other files are never touched."""
    if root is None or not Path(root).is_dir():
        return
    root = Path(root)
    for p in list_checkpoints(root):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".{PREFIX}*.tmp-*"):
        pid = p.name.split(".tmp-")[-1].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
    if not any(root.iterdir()):
        root.rmdir()
