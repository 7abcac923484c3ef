"""One store of good training states for the safeguards: one guard, two bounds.

The divergence guard (:mod:`genforget.lm.safeguards.guard`, bound: retain perplexity) and the
collateral watch of the calibrated stop (:mod:`genforget.lm.safeguards.stopping`, bound: other
people's extraction) each fall back to the state of their own last passing check. Both keep it
here: a CPU copy of the trainable weights (this process's share under FSDP / ZeRO, through
:class:`~genforget.lm.train_state.TrainState`), with the optimizer state where the holder puts it
back too (the guard does; a collateral back-off resets the optimizer instead). Each holder names
one step; a step both name is held once, and a step no holder names any more is freed, so a run
holds at most two copies of the trainable weights and usually one (the two checks run every five
steps by default). Checkpoints save and restore the store as it is
(:mod:`genforget.lm.safeguards.checkpoint`).

A step names one state: in the training loop the guard checks after update ``k`` and the stop
before update ``k + 1``, with no update between; the one change of weights without an update, a
collateral back-off, keeps nothing at its step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from genforget.lm.train_state import TrainState

GUARD = "guard"  # the divergence guard's last good step
COLLATERAL = "collateral"  # the collateral watch's last good step


@dataclass
class Snapshot:
    """The state after ``step`` optimizer steps: weights, and the optimizer state if kept."""

    step: int
    weights: list[torch.Tensor]
    optimizer: dict | None = None


class SnapshotStore:
    """Snapshots by step, and the step each holder (:data:`GUARD`, :data:`COLLATERAL`) falls back to."""

    def __init__(self) -> None:
        self.entries: dict[int, Snapshot] = {}
        self.refs: dict[str, int] = {}

    def keep(self, holder: str, step: int, state: TrainState, optimizer: bool = False) -> None:
        """Make the state after ``step`` steps ``holder``'s last good one (copied only if no
        holder keeps that step yet; ``optimizer``: with the optimizer state)."""
        snap = self.entries.get(step)
        if snap is None:
            snap = self.entries[step] = Snapshot(step, state.weights())
        if optimizer and snap.optimizer is None:
            snap.optimizer = state.optimizer_state()
        self.refs[holder] = step
        self._free()

    def step(self, holder: str) -> int | None:
        """``holder``'s last good step (None: it kept nothing)."""
        return self.refs.get(holder)

    def get(self, holder: str) -> Snapshot | None:
        """``holder``'s snapshot (None: it kept nothing)."""
        step = self.refs.get(holder)
        return None if step is None else self.entries[step]

    def restore(self, holder: str, state: TrainState, optimizer: bool = False) -> int:
        """Put ``holder``'s weights back (``optimizer``: its optimizer state too); returns its step."""
        snap = self.entries[self.refs[holder]]
        state.load_weights(snap.weights)
        if optimizer:
            state.load_optimizer_state(snap.optimizer)
        return snap.step

    def load(self, entries: list[Snapshot], refs: dict[str, int]) -> None:
        """Replace the store's content (a checkpoint's, on resume)."""
        self.entries = {s.step: s for s in entries}
        self.refs = dict(refs)
        self._free()

    def nbytes(self) -> int:
        """Bytes held: every snapshot's weights and optimizer tensors."""
        total = 0
        for snap in self.entries.values():
            total += sum(w.nbytes for w in snap.weights)
            for st in (snap.optimizer or {}).get("state", {}).values():
                total += sum(v.nbytes for v in st.values() if torch.is_tensor(v))
        return total

    def _free(self) -> None:
        kept = set(self.refs.values())
        self.entries = {s: snap for s, snap in self.entries.items() if s in kept}
