"""Divergence guard: stop an unlearning run before it destroys what the model should keep.

Gradient ascent (and any forget loss without a floor) can collapse a model in a few steps at a
high learning rate. Every ``divergence_every`` steps the guard scores a fixed sample of the retain
set (no gradients) on two statistics: the mean NLL of whole retain texts, and the mean NLL of the
retain examples' own targets (their spans: for PII examples the values of other people, the same
kind of fact as the forget targets, which whole-text NLL dilutes with template words). When
either's perplexity (exp of the mean NLL) rises past ``divergence_ratio`` x its value before
training, the run stops and the
trainable parameters and optimizer state of the last good check are restored.

The last good state lives in the safeguards' one :class:`~genforget.lm.safeguards.snapshots.SnapshotStore`,
shared with the collateral watch (one guard, two bounds: retain perplexity here, other people's
extraction there; a step both checks passed is held once): CPU copies of the trainable parameters
only (a LoRA run copies just the adapter) and of the optimizer state, each process keeping its own
share under FSDP / DeepSpeed ZeRO (:class:`genforget.lm.train_state.TrainState`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from genforget.lm.data import Collator, normalise_example, tokenize_all
from genforget.lm.safeguards.snapshots import GUARD, SnapshotStore
from genforget.lm.scoring import sequence_scores

if TYPE_CHECKING:
    from genforget.lm.train_state import TrainState

MAX_EXAMPLES = 32  # enough for a stable mean; the check must stay a small share of a step


class DivergenceGuard:
    """Watch retain NLL; :meth:`check` returns True (after restoring the last good state) on a trip."""

    def __init__(
        self,
        retain: list[dict],
        tokenizer,
        config,
        device: torch.device,
        log=print,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        rows = retain[:MAX_EXAMPLES]
        collate = Collator(tokenizer)
        whole = [{"text": normalise_example(ex)["text"]} for ex in rows]
        self.batches = {
            "retain_nll": collate(tokenize_all(whole, tokenizer, config.max_length, "retain")),
            "retain_target_nll": collate(tokenize_all(rows, tokenizer, config.max_length, "retain")),
        }
        for b in self.batches.values():
            b.pop("idx", None)
        self.device, self.ratio, self.every = device, config.divergence_ratio, config.divergence_every
        self.log = log  # accelerator.print: once, on the main process
        self.start: dict[str, float] = {}
        self.events: list[dict] = []  # the trip's row, for the run's history
        # Shared with the collateral watch (the trainer passes one store to both).
        self.snapshots = snapshots if snapshots is not None else SnapshotStore()

    @property
    def good_step(self) -> int:
        """The step of the last passing check (0 before any)."""
        step = self.snapshots.step(GUARD)
        return 0 if step is None else step

    @torch.no_grad()
    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        out = {}
        for name, batch in self.batches.items():
            b = {k: v.to(self.device) for k, v in batch.items()}
            out[name] = float(sequence_scores(model, b).nll.float().mean())
        return out

    def _save(self, step: int, state: TrainState) -> None:
        self.snapshots.keep(GUARD, step, state, optimizer=True)

    def start_run(self, model: torch.nn.Module, state: TrainState) -> None:
        """Record the statistics before any step and the state to fall back to (``state``: the
        run's :class:`~genforget.lm.train_state.TrainState`)."""
        self.start = self.measure(model)
        self._save(0, state)

    def check(self, step: int, model: torch.nn.Module, state: TrainState) -> bool:
        """After ``step`` optimizer steps: True when the run diverged (state restored, row logged)."""
        if step % self.every:
            return False
        now = self.measure(model)
        # Perplexity ratios, exp(NLL now - NLL before): a ratio of NLLs near 0 (a memorised retain
        # set) would trip on noise, a perplexity ratio reads the same for any starting level.
        ratios = {k: math.exp(min(now[k] - self.start[k], 50.0)) for k in now}
        if max(ratios.values()) <= self.ratio:
            self._save(step, state)
            return False
        self.snapshots.restore(GUARD, state, optimizer=True)
        row = {
            "step": step,
            "diverged": True,
            "restored_step": self.good_step,
            **{f"{k}_start": v for k, v in self.start.items()},
            **now,
        }
        self.events.append(row)
        self.log(
            f"divergence guard: retain perplexity rose {max(ratios.values()):.2f}x (> {self.ratio}) by step {step}; "
            f"stopped and restored the state of step {self.good_step}"
        )
        return True
