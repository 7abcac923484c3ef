"""Calibrated early stopping: stop once the forget set looks like data the model never saw.

Unlearning has two failure modes a membership attack can see: under-forgetting (forget examples
still more likely than unseen ones) and over-forgetting (*less* likely than unseen ones, which
itself marks who was deleted). Given calibration examples of the same kind that were never
trained on (for the built-in corpus: freshly generated people), training stops at the first step
where the forget set's mean membership statistic reaches the calibration set's.

The statistic is min-k % (default: the mean over examples of −mean of each example's lowest 40 %
target-token log-probs) or plain mean NLL. Membership attacks read the rarest tokens first, and
NPO lowers some tokens far more than others, so matching the mean NLL leaves the forget set's
tail *rarer* than unseen data's (over-forgotten to min-k % attacks); matching min-k % does not.
"""

from __future__ import annotations

import random

import torch

from genforget.lm.data import Collator
from genforget.lm.scoring import min_k_rows, scores_from_tokens, token_logprobs


class CalibratedStop:
    """Tracks the forget set's statistic from the training batches themselves (free) and re-scores
    the calibration set every ``every`` steps (one small forward pass), so the check runs at
    every step without slowing training down."""

    def __init__(
        self,
        n_forget: int,
        calib_feats: list[dict],
        collate: Collator,
        every: int = 5,
        statistic: str = "nll",
        max_examples: int = 64,
        seed: int = 0,
    ) -> None:
        if statistic not in ("min_k", "nll"):
            raise ValueError(f"calibration statistic must be 'min_k' or 'nll' (got {statistic!r})")
        self.statistic = statistic
        rng = random.Random(seed)
        self.calib = rng.sample(calib_feats, min(max_examples, len(calib_feats)))
        self.collate = collate
        self.every = every
        self.latest = torch.full((n_forget,), float("nan"))
        self.calib_value: float | None = None
        self.calib_step = -every
        self.history: list[tuple[int, float, float]] = []

    def per_example(self, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The statistic per example from masked token log-probs (higher = less member-like)."""
        if self.statistic == "min_k":
            return min_k_rows(logp, mask)
        return scores_from_tokens(logp.detach(), mask).nll

    def update(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        """Record the statistic of the forget examples of this step's batch."""
        self.latest[idx.cpu()] = values.detach().float().cpu()

    @torch.no_grad()
    def _calibration_value(self, model: torch.nn.Module) -> float:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(self.calib), 32):
            chunk = [{k: f[k] for k in ("input_ids", "labels")} for f in self.calib[i : i + 32]]
            batch = {k: v.to(device) for k, v in self.collate(chunk).items()}
            total += self.per_example(*token_logprobs(model, batch)).sum().item()
        model.train(was_training)
        return total / len(self.calib)

    def should_stop(self, step: int, model: torch.nn.Module) -> bool:
        """True once every forget example has been scored and their mean statistic >= calibration's."""
        if torch.isnan(self.latest).any():
            return False
        if step - self.calib_step >= self.every or self.calib_value is None:
            self.calib_value, self.calib_step = self._calibration_value(model), step
        forget = self.latest.mean().item()
        self.history.append((step, forget, self.calib_value))
        return forget >= self.calib_value
