"""Checkpoint and resume for the LM unlearning loop: ``save_every``, ``resume_from``.

A checkpoint is a directory ``<checkpoint_dir>/checkpoint-NNNNNN`` (N = optimizer steps done; the
name holds nothing else, so no data can leak through it) with three files:

- ``weights.safetensors``: the trainable parameters (a LoRA run: only the adapter);
- ``state.safetensors``: every other tensor: AdamW state, the torch CPU/CUDA RNG states and the
  data loaders' generator, the calibrated stop's per-example values, and the safeguards' snapshot
  store (:mod:`genforget.lm.safeguards.snapshots`: the divergence guard's last good weights +
  optimizer state and the collateral watch's last good weights, one copy when their steps agree);
- ``genforget_checkpoint.json``: scalars: the step, the config, SHA-256 fingerprints of the data
  and of the starting model, the history rows so far, the optimizer's param groups, Python and
  NumPy RNG states, the stop's and the guard's numbers, which step each safeguard falls back to.

Under FSDP and DeepSpeed ZeRO each process also writes ``rank-NNNNN.safetensors`` (+ ``.json``):
its own share of the trainable weights, of the optimizer state and of the snapshot store
(:class:`genforget.lm.train_state.TrainState`), and such a checkpoint resumes on the same engine
and number of processes only; ``weights.safetensors`` is then gathered from the shards (every
process takes part), so it holds the full trainable weights as in any other run.
A single-process or DDP checkpoint holds everything in the three files and resumes on any number
of processes.

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

import contextlib
import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from genforget.io import _pid_alive, atomic_dir
from genforget.lm.checkpoint_meta import (  # noqa: F401  (re-exported: the checkpoint API)
    FORMAT,
    META,
    PREFIX,
    RESUMABLE_CHANGES,
    check_compatible,
    check_resume,
    checkpoint_name,
    checkpoint_root,
    data_fingerprints,
    engine_key,
    list_checkpoints,
    model_fingerprint,
    read_meta,
)
from genforget.lm.safeguards.snapshots import Snapshot, SnapshotStore


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


def _save_snapshots(store: SnapshotStore, tensors: dict) -> dict:
    """The snapshot store as safetensors entries (into ``tensors``) + JSON (returned): each
    step's weights once, its optimizer state if kept, and the step each safeguard falls back to."""
    entries = {}
    for snap in store.entries.values():
        prefix = f"snap.{snap.step}"
        for i, w in enumerate(snap.weights):
            tensors[f"{prefix}.w.{i}"] = w.contiguous()
        opt = None if snap.optimizer is None else _flatten_opt(snap.optimizer, f"{prefix}.opt", tensors)
        entries[str(snap.step)] = {"n_weights": len(snap.weights), "optimizer": opt}
    return {"entries": entries, "refs": dict(store.refs)}


def _load_snapshots(meta: dict, tensors: dict) -> list[Snapshot]:
    out = []
    for step, e in meta["entries"].items():
        prefix = f"snap.{step}"
        weights = [tensors[f"{prefix}.w.{i}"] for i in range(e["n_weights"])]
        opt = None if e["optimizer"] is None else _unflatten_opt(e["optimizer"], f"{prefix}.opt", tensors)
        out.append(Snapshot(int(step), weights, opt))
    return out


class Checkpointer:
    """The loop's checkpoint hooks; every method is a no-op when ``save_every`` and
    ``resume_from`` are both unset.

    Built before anything is prepared (checks the config and data against the checkpoint),
    :meth:`resume` after the optimizer, stop and guard exist, :meth:`due`/:meth:`save` after
    each step, :meth:`finish` when the run ends well.
    """

    def __init__(self, config, accelerator, model, forget, retain=None, calibration=None, collateral=None):
        self.config, self.acc = config, accelerator
        self.active = bool(config.save_every or config.resume_from)
        self.path: Path | None = None
        if not self.active:
            return
        # Sharded engines: each process checkpoints its own share (rank-NNNNN files).
        self.sharded = accelerator.distributed_type.value in ("FSDP", "DEEPSPEED")
        self.layout = {"engine": engine_key(accelerator), "world_size": accelerator.num_processes}
        self.root = checkpoint_root(config)
        self.path = check_resume(config, forget, retain, calibration, collateral)
        self.fingerprints = data_fingerprints(forget, retain, calibration, collateral)
        self.model_fp = model_fingerprint(model)
        if self.path is not None:
            meta = read_meta(self.path)
            check_compatible(self.path, meta, config, self.fingerprints, self.model_fp)
            if (self.sharded or "sharded" in meta) and meta.get("sharded") != self.layout:
                raise ValueError(
                    f"resume_from {self.path}: written by {meta.get('sharded') or 'an unsharded run'}, this run is "
                    f"{self.layout}; a sharded checkpoint resumes on the same engine and number of processes"
                )
        elif config.resume_from == "auto":
            accelerator.print(f"resume_from auto: no checkpoint in {self.root}; starting from step 0")

    def resume(
        self,
        raw,
        state,
        g,
        iters,
        stop=None,
        guard=None,
        history=None,
        snapshots: SnapshotStore | None = None,
    ) -> int:
        """Bind the loop's state (``state``: its :class:`~genforget.lm.train_state.TrainState`;
        ``snapshots``: the store the guard and the stop share); when resuming, put the
        checkpoint's state back and draw the batches already consumed. Returns the step to
        continue from (0: a fresh run)."""
        self.raw, self.state, self.g, self.stop, self.guard = raw, state, g, stop, guard
        self.snapshots = snapshots
        self.history, self.n0 = history, len(history) if history is not None else 0
        self.names = {id(p): n for n, p in raw.named_parameters()}
        if self.path is None:
            return 0
        meta = read_meta(self.path)
        t = load_file(self.path / "state.safetensors")
        local, lmeta = t, meta
        if self.sharded:
            local = load_file(self.path / f"{self._rank_name()}.safetensors")
            lmeta = json.loads((self.path / f"{self._rank_name()}.json").read_text())
            state.load_weights([local[f"w.{i}"] for i in range(lmeta["n_weights"])])
        else:
            weights = load_file(self.path / "weights.safetensors")
            state.load_weights([weights[self.names[id(p)]] for p in state.tensors])
        state.load_optimizer_state(_unflatten_opt(lmeta["optimizer"], "opt", local))
        if stop is not None:
            s = meta["stop"]
            stop.latest = t["stop.latest"]
            stop.calib_value, stop.calib_step = s["calib_value"], s["calib_step"]
            stop.history = [tuple(h) for h in s["history"]]
            stop.collateral_base = s["collateral_base"]
            stop.collateral_history = [tuple(h) for h in s["collateral_history"]]
            stop.probe_base, stop.lost = s.get("probe_base"), s.get("lost", 0.0)
            stop.probe_history = [tuple(h) for h in s.get("probe_history", [])]
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
        if guard is not None:
            guard.start, guard.events = meta["guard"]["start"], meta["guard"]["events"]
        if snapshots is not None:
            snapshots.load(_load_snapshots(lmeta["snapshots"], local), lmeta["snapshots"]["refs"])
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
        """Write ``checkpoint-<step>`` atomically, then drop the older ones. The main process
        writes it; under a sharded engine every process adds its rank file first."""
        final = self.root / checkpoint_name(step)
        weights = self.state.full_weights()  # under FSDP / ZeRO a gather: every process takes part
        local, lmeta = self._local_state()
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_dir(final, overwrite=True)) if self.acc.is_main_process else None
            if self.sharded:
                from accelerate.utils import broadcast_object_list

                tmp = Path(broadcast_object_list([str(tmp) if tmp else None])[0])
                save_file(local, tmp / f"{self._rank_name()}.safetensors")
                (tmp / f"{self._rank_name()}.json").write_text(json.dumps(lmeta) + "\n")
                self.acc.wait_for_everyone()
            if self.acc.is_main_process:
                tensors, meta = self._state(step)
                if not self.sharded:
                    tensors.update(local)
                    meta.update(lmeta)
                save_file(weights, tmp / "weights.safetensors")
                save_file(tensors, tmp / "state.safetensors")
                (tmp / META).write_text(json.dumps(meta) + "\n")  # last: the marker of a complete save
        if self.acc.is_main_process:
            for old in list_checkpoints(self.root):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        return final

    def _rank_name(self) -> str:
        return f"rank-{self.acc.process_index:05d}"

    def _local_state(self) -> tuple[dict, dict]:
        """This process's share: optimizer state, the snapshot store (the guard's and the stop's
        last good states), and (sharded runs) its weights. All of it, in a single-process or DDP run."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict = {"optimizer": _flatten_opt(self.state.optimizer_state(), "opt", tensors)}
        if self.sharded:
            weights = self.state.weights()
            tensors.update({f"w.{i}": w.contiguous() for i, w in enumerate(weights)})
            meta["n_weights"] = len(weights)
        if self.snapshots is not None:
            meta["snapshots"] = _save_snapshots(self.snapshots, tensors)
        return tensors, meta

    def finish(self) -> None:
        """After a successful run: delete this run's checkpoints unless ``keep_checkpoints``
        (they are partially-unlearned weights that still hold the forget set). Only
        ``checkpoint-NNNNNN`` dirs and their temporary siblings are removed, then the dir if empty."""
        if self.active and not self.config.keep_checkpoints and self.acc.is_main_process:
            remove_checkpoints(self.root)

    def _state(self, step: int) -> tuple[dict, dict]:
        """What every process shares (written by the main one): step, config, fingerprints,
        history, RNG, the stop's and the guard's numbers."""
        tensors: dict[str, torch.Tensor] = {}
        meta = {
            "format": FORMAT,
            "step": step,
            "config": dataclasses.asdict(self.config),
            "fingerprints": self.fingerprints,
            "model": self.model_fp,
            "history": self.history[self.n0 :] if self.history is not None else [],
            "rng": self._rng(tensors),
        }
        if self.sharded:
            meta["sharded"] = self.layout
        if self.stop is not None:
            s = self.stop
            tensors["stop.latest"] = s.latest.clone()
            meta["stop"] = {
                "calib_value": s.calib_value,
                "calib_step": s.calib_step,
                "history": s.history,
                "collateral_base": s.collateral_base,
                "collateral_history": s.collateral_history,
                **{k: getattr(s, k) for k in ("probe_base", "probe_history", "lost")},
                **{k: getattr(s, k) for k in ("backoffs", "over", "in_bound", "good", "forgotten_good")},
                **{
                    k: getattr(s, k)
                    for k in ("repairing", "repair_steps", "forget_extraction", "retain_boost")
                },
            }
        if self.guard is not None:
            meta["guard"] = {"start": self.guard.start, "events": self.guard.events}
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
