"""Calibrated early stopping: stop once the forget set looks like data the model never saw.

Unlearning has two failure modes a membership attack can see: under-forgetting (forget examples
still more likely than unseen ones) and over-forgetting (*less* likely than unseen ones, which
itself marks who was deleted). Given calibration examples of the same kind that were never
trained on (for the built-in corpus: freshly generated people), training stops at the first check
where the forget set's mean membership statistic reaches the calibration set's.

Statistics (``UnlearnConfig.calibration_statistic``):

- ``nll``: mean NLL of the loss's target tokens, tracked free from the training batches.
- ``min_k``: min-k % (−mean of each example's lowest 40 % target-token log-probs), also free.
- ``text_min_k`` (default): min-k % over *every* token of each whole example, forget and
  calibration sets re-scored at each check. This is what a membership attack on the published
  text reads. The loss only touches names and values, and NPO lowers them far more than the
  surrounding words, so target-token statistics cross the unseen level at the wrong moment:
  mean NLL too late (the rarest tokens already rarer than unseen data's), target min-k % too
  early (the rest of the text still member-like).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch

from genforget.lm.data import Collator
from genforget.lm.scoring import min_k_rows, scores_from_tokens, token_logprobs

if TYPE_CHECKING:
    from genforget.lm.train_state import TrainState

STATISTICS = ("text_min_k", "min_k", "nll")


class CalibratedStop:
    """Decides when to stop; re-scores the calibration set every ``every`` steps.

    ``forget_text_feats`` (whole-text features of the forget examples) is needed by
    ``text_min_k``; the target-token statistics are recorded from training batches via
    :meth:`update` instead, which costs nothing.
    """

    def __init__(
        self,
        n_forget: int,
        calib_feats: list[dict],
        collate: Collator,
        every: int = 5,
        statistic: str = "text_min_k",
        max_examples: int = 64,
        seed: int = 0,
        forget_text_feats: list[dict] | None = None,
        collateral_feats: list[dict] | None = None,
        collateral_ratio: float = 1.5,
    ) -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"calibration statistic must be one of {STATISTICS} (got {statistic!r})")
        if statistic == "text_min_k" and not forget_text_feats:
            raise ValueError("calibration statistic 'text_min_k' needs forget_text_feats")
        self.statistic = statistic
        rng = random.Random(seed)
        self.calib = rng.sample(calib_feats, min(max_examples, len(calib_feats)))
        self.forget_text = forget_text_feats or []
        self.collate = collate
        self.every = every
        self.latest = torch.full((n_forget,), float("nan"))
        self.calib_value: float | None = None
        self.calib_step = -every
        self.history: list[tuple[int, float, float]] = []
        # Collateral: other people's targets of the same shape (retain texts); their mean NLL at
        # the first check is the baseline, and training stops once it passes ratio x baseline.
        self.collateral = collateral_feats or []
        self.collateral_ratio = collateral_ratio
        self.collateral_base: float | None = None
        self.collateral_history: list[tuple[int, float]] = []
        self.reason = ""
        # Set by the trainer: trainable weights at the last passing check, restored on collateral.
        self.last_good: list | None = None
        self.last_good_step: int | None = None
        self.restored_step: int | None = None

    def per_example(self, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The statistic per example from masked token log-probs (higher = less member-like)."""
        if self.statistic == "nll":
            return scores_from_tokens(logp.detach(), mask).nll
        return min_k_rows(logp, mask)

    def update(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        """Record the target-token statistic of the forget examples of this step's batch."""
        self.latest[idx.cpu()] = values.detach().float().cpu()

    @torch.no_grad()
    def _mean_value(self, model: torch.nn.Module, feats: list[dict]) -> float:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(feats), 32):
            chunk = [{k: f[k] for k in ("input_ids", "labels")} for f in feats[i : i + 32]]
            batch = {k: v.to(device) for k, v in self.collate(chunk).items()}
            total += self.per_example(*token_logprobs(model, batch)).sum().item()
        model.train(was_training)
        return total / len(feats)

    def refresh(self, step: int, model: torch.nn.Module) -> float:
        """The calibration set's statistic, re-scored when ``every`` steps have passed."""
        if step - self.calib_step >= self.every or self.calib_value is None:
            self.calib_value, self.calib_step = self._mean_value(model, self.calib), step
        return self.calib_value

    @torch.no_grad()
    def _collateral_nll(self, model: torch.nn.Module) -> float:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(self.collateral), 32):
            chunk = [{k: f[k] for k in ("input_ids", "labels")} for f in self.collateral[i : i + 32]]
            batch = {k: v.to(device) for k, v in self.collate(chunk).items()}
            total += scores_from_tokens(*token_logprobs(model, batch)).nll.sum().item()
        model.train(was_training)
        return total / len(self.collateral)

    def collateral_damaged(self, step: int, model: torch.nn.Module) -> bool:
        """True once the collateral targets' mean NLL passes ``collateral_ratio`` x its first value."""
        if not self.collateral:
            return False
        value = self._collateral_nll(model)
        self.collateral_history.append((step, value))
        if self.collateral_base is None:
            self.collateral_base = value
            return False
        # Tiny NLLs (memorised values) move by noise: compare with a floor of 0.05 nats.
        return value > self.collateral_ratio * max(self.collateral_base, 0.05)

    def should_stop(self, step: int, model: torch.nn.Module) -> bool:
        """True once the forget set's mean statistic reaches the calibration set's, or once other
        people's targets of the same kind (collateral) have become markedly less likely.

        Target-token statistics decide only once every forget example has been scored; the
        whole-text statistic decides at each re-scoring of the calibration set.
        """
        checking = step - self.calib_step >= self.every or self.calib_value is None
        if checking and self.collateral_damaged(step, model):
            self.reason = "collateral"
            self.history.append((step, float("nan"), float("nan")))
            return True
        if self.statistic == "text_min_k":
            if not checking:
                return False
            unseen = self.refresh(step, model)
            forget = self._mean_value(model, self.forget_text)
        else:
            unseen = self.refresh(step, model)
            if torch.isnan(self.latest).any():
                return False
            forget = self.latest.mean().item()
        self.history.append((step, forget, unseen))
        if forget >= unseen:
            self.reason = "calibrated"
            return True
        return False


def check_stop(stop: CalibratedStop, step: int, raw: torch.nn.Module, state: TrainState) -> bool:
    """``stop.should_stop``; with collateral watched, the trainable weights are kept (on the CPU;
    each process its share under FSDP / ZeRO: ``state``, the run's
    :class:`~genforget.lm.train_state.TrainState`) at every check that passes, and put back when
    collateral damage stops training: the model returned is the last one whose other people's
    targets were still known."""
    checks = len(stop.collateral_history)
    if stop.should_stop(step, raw):
        if stop.reason == "collateral" and stop.last_good is not None:
            state.load_weights(stop.last_good)
            stop.restored_step = stop.last_good_step
        return True
    if len(stop.collateral_history) > checks:
        stop.last_good = state.weights()
        stop.last_good_step = step
    return False


def add_calibration_trace(history: list[dict], stop: CalibratedStop) -> None:
    """Each calibrated-stop check onto its step's row (a stop step, never trained, gets a row)."""
    rows = {r["step"]: r for r in history}
    for step, forget_value, unseen_value in stop.history:
        row = rows.get(step)
        if row is None:
            row = {"step": step, "stopped": True}
            history.append(row)
        if forget_value == forget_value:  # not NaN: a collateral stop compares nothing else
            row.update(calibration_forget=forget_value, calibration_unseen=unseen_value)
        if row.get("stopped"):
            row["stop_reason"] = stop.reason
            if stop.reason == "collateral":
                row["restored_step"] = stop.restored_step
    for step, value in stop.collateral_history:
        if step in rows:
            rows[step]["collateral_nll"] = value


def report_stop(accelerator, stop: CalibratedStop, step: int, history: list | None) -> None:
    """Say why training stopped (``accelerator.print``: once, on the main process)."""
    if stop.reason == "collateral":
        (_, base), (_, now) = stop.collateral_history[0], stop.collateral_history[-1]
        accelerator.print(
            f"collateral stop after {step} steps: other people's targets of the same kind went from "
            f"NLL {base:.3f} to {now:.3f} (bound {stop.collateral_ratio:g}x); weights of step "
            f"{stop.restored_step} restored"
        )
        return
    _, forget_value, unseen_value = stop.history[-1]
    accelerator.print(
        f"calibrated stop after {step} steps: forget {stop.statistic} {forget_value:.3f} "
        f">= unseen {unseen_value:.3f}"
    )
