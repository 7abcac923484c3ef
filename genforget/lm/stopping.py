"""Calibrated early stopping: stop once the forget set looks like data the model never saw.

Unlearning has two failure modes a membership attack can see: under-forgetting (forget examples
still more likely than unseen ones) and over-forgetting (*less* likely than unseen ones, which
itself marks who was deleted). Given calibration examples of the same kind that were never
trained on (for the built-in corpus: freshly generated people), training stops at the first step
where the forget set's mean target NLL reaches the calibration set's.
"""

from __future__ import annotations

import random

import torch

from genforget.lm.data import Collator
from genforget.lm.scoring import sequence_scores


class CalibratedStop:
    """Tracks the forget set's NLL from the training batches themselves (free) and re-scores the
    calibration set every ``every`` steps (one small forward pass), so the check runs at every
    step without slowing training down."""

    def __init__(
        self,
        n_forget: int,
        calib_feats: list[dict],
        collate: Collator,
        every: int = 5,
        max_examples: int = 64,
        seed: int = 0,
    ) -> None:
        rng = random.Random(seed)
        self.calib = rng.sample(calib_feats, min(max_examples, len(calib_feats)))
        self.collate = collate
        self.every = every
        self.latest = torch.full((n_forget,), float("nan"))
        self.calib_nll: float | None = None
        self.calib_step = -every
        self.history: list[tuple[int, float, float]] = []

    def update(self, idx: torch.Tensor, nll: torch.Tensor) -> None:
        """Record the NLL of the forget examples of this step's batch."""
        self.latest[idx.cpu()] = nll.detach().float().cpu()

    @torch.no_grad()
    def _calibration_nll(self, model: torch.nn.Module) -> float:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(self.calib), 32):
            chunk = [{k: f[k] for k in ("input_ids", "labels")} for f in self.calib[i : i + 32]]
            batch = {k: v.to(device) for k, v in self.collate(chunk).items()}
            total += sequence_scores(model, batch).nll.sum().item()
        model.train(was_training)
        return total / len(self.calib)

    def should_stop(self, step: int, model: torch.nn.Module) -> bool:
        """True once every forget example has been scored and their mean NLL >= calibration's."""
        if torch.isnan(self.latest).any():
            return False
        if step - self.calib_step >= self.every or self.calib_nll is None:
            self.calib_nll, self.calib_step = self._calibration_nll(model), step
        forget = self.latest.mean().item()
        self.history.append((step, forget, self.calib_nll))
        return forget >= self.calib_nll
