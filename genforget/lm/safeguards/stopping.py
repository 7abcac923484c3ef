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

Collateral watch (:func:`genforget.unlearn` without a calibration set): other people's strings
of the same shape as the forget targets (their phone numbers, emails) in the retain texts. Its
scale is greedy extraction, the thing a user asks about ("does the model still give the other
people's emails?"), not NLL: on memorised data the NLL of a known value is near 0 and moves by
multiples under harmless updates (a 1.5x bound on it fired within 1-6 steps on every family
tried), while a value stays extractable until its argmax flips. The bound: at most
``collateral_max_loss`` (default 0.10) of the watched values may stop being extracted.

NPO knocks other people's values out for a while as it forgets (on the tiny models of
``bench/families.py``, often half of them for ten steps or more) and its retain term brings them
back, so a dip alone ends nothing. At each check (every step in the API):

- forget set out (its targets' greedy extraction <= 0.10) but others past the bound: the next
  steps train on the retain term alone (*repair*) until they are back to half the bound;
- forget set not out and others past the bound: the retain term gets an extra weight, raised by
  one per such check (at most ``MAX_RETAIN_BOOST``) and lowered by one per check within the bound
  (a Lagrange multiplier on the constraint, by dual ascent);
- forget set not out and others past the bound for ``COLLATERAL_PATIENCE`` checks in a row: a
  *back-off*: the weights of the last good check come back, the optimizer's moments are reset,
  the learning rate halves, and training goes on within the same budget (after ``MAX_BACKOFFS``,
  a stop with those weights);
- forget set at never-seen level (the calibrated stop) and others within the bound: done.

"Good" weights, kept at each check, are within the bound; once such a state with the forget set
out has been seen, only such states. A run that ends past the bound returns the last good
weights (``collateral_final``), and the outcome (:mod:`genforget.lm.outcome`) says all of it.
They are kept in the safeguards' one :class:`~genforget.lm.safeguards.snapshots.SnapshotStore`,
shared with the divergence guard: one guard, two bounds, and a step both checks passed is held once.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch

from genforget.config import STATISTICS
from genforget.lm.data import Collator
from genforget.lm.safeguards.snapshots import COLLATERAL, SnapshotStore
from genforget.lm.scoring import min_k_rows, scores_from_tokens, token_logprobs

if TYPE_CHECKING:
    from genforget.lm.train_state import TrainState

COLLATERAL_MAX_LOSS = 0.10  # share of the watched values extractable at the start that may go
COLLATERAL_PATIENCE = 20  # checks past the bound, forget set not yet out, before a trip
MAX_BACKOFFS = 3  # collateral trips answered by restore + half the learning rate, then a stop
MAX_RETAIN_BOOST = 10.0  # cap of the multiplier on the retain term while past the bound
BACKOFF_FACTOR = 0.5


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
        collateral_max_loss: float = COLLATERAL_MAX_LOSS,
        max_backoffs: int = MAX_BACKOFFS,
        forget_target_feats: list[dict] | None = None,
        collateral_probe_feats: list[dict] | None = None,
        snapshots: SnapshotStore | None = None,
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
        # Collateral: other people's targets of the same shape (retain texts); their greedy
        # extraction at the first check is the baseline (see the module docstring).
        self.collateral = collateral_feats or []
        self.collateral_max_loss = collateral_max_loss
        self.max_backoffs = max_backoffs
        self.collateral_base: float | None = None
        self.collateral_history: list[tuple[int, float, float]] = []  # (step, extraction, nll)
        # The same values asked with their own sentence alone (genforget.lm.twins.sentence_probes):
        # the bound holds for both, since a value kept in its record's context can be lost to a
        # plain question.
        self.probes = collateral_probe_feats or []
        self.probe_base: float | None = None
        self.probe_history: list[tuple[int, float]] = []  # (step, extraction)
        self.lost = 0.0  # the share lost at the latest check (the worse of the two ways of asking)
        self.backoffs: list[dict] = []  # {"step", "restored_step", "extraction", "lr"} per back-off
        self.patience = COLLATERAL_PATIENCE
        self.over = 0  # consecutive checks past the bound while the forget set is still extracted
        self.in_bound = True  # the latest collateral check was within the bound
        # The forget targets as given, for their greedy extraction at each collateral check.
        self.forget_targets = forget_target_feats or []
        self.forget_extraction: float | None = None
        # The forget set is out (extraction <= FORGOTTEN_AT) but other people's values are past
        # the bound: the trainer steps on the retain term alone until they are back.
        self.repairing = False
        self.repair_steps: list[int] = []
        # The latest check's weights are worth keeping (in bound; once a state with the forget set
        # out and in bound was kept, only such states are).
        self.good = True
        self.forgotten_good = False
        # Extra weight on the retain term while others are past the bound and the forget set is not
        # out yet: a Lagrange multiplier on the collateral constraint, raised by one per check past
        # it and lowered by one per check within it (dual ascent), so forgetting goes on but leans
        # toward keeping the others instead of leaving all the mending to the repair phase.
        self.retain_boost = 0.0
        self.reason = ""
        # Trainable weights at the last passing check, restored on collateral (check_stop keeps
        # them; the trainer passes the store it shares with the divergence guard).
        self.snapshots = snapshots if snapshots is not None else SnapshotStore()
        self.restored_step: int | None = None

    @property
    def last_good_step(self) -> int | None:
        """The step of the last check that kept the weights (None: none did)."""
        return self.snapshots.step(COLLATERAL)

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

    def collateral_check(self, step: int, model: torch.nn.Module) -> str:
        """Measure the watched values (their first check sets the baseline) and the forget
        targets; returns ``ok`` (within the bound: at most ``collateral_max_loss`` of the watched
        values lost), ``over`` (past it: the forget set is out and the trainer repairs, or it is
        not yet and fewer than ``patience`` such checks ran in a row: NPO's retain term often
        mends a dip) or ``trip``."""
        from genforget.lm.outcome import FORGOTTEN_AT, measure

        figs = measure(model, self.collateral, self.collate)
        self.collateral_history.append((step, figs.extraction, figs.nll))
        if self.collateral_base is None:
            self.collateral_base = figs.extraction
        lost = self.collateral_base - figs.extraction
        if self.probes:
            asked = measure(model, self.probes, self.collate).extraction
            self.probe_history.append((step, asked))
            if self.probe_base is None:
                self.probe_base = asked
            lost = max(lost, self.probe_base - asked)
        self.lost = lost
        self.in_bound = lost <= self.collateral_max_loss + 1e-9
        if self.forget_targets:
            self.forget_extraction = measure(model, self.forget_targets, self.collate).extraction
        out = self.forget_extraction is not None and self.forget_extraction <= FORGOTTEN_AT
        self.good = self.in_bound and (out or not self.forgotten_good)
        self.forgotten_good = self.forgotten_good or (self.good and out)
        # Repair until others are back to half the bound (hysteresis): resuming the forget loss
        # right at the bound would knock them past it again at once.
        self.repairing = out and (
            not self.in_bound or (self.repairing and lost > self.collateral_max_loss / 2)
        )
        if self.repairing:
            self.repair_steps.append(step)
        self.over = 0 if self.in_bound or self.repairing else self.over + 1
        step_up = not self.in_bound and not self.repairing
        self.retain_boost = (
            min(MAX_RETAIN_BOOST, self.retain_boost + 1) if step_up else max(0.0, self.retain_boost - 1)
        )
        if self.in_bound:
            return "ok"
        return "trip" if self.over >= self.patience else "over"

    def should_stop(self, step: int, model: torch.nn.Module) -> bool:
        """True once the forget set's mean statistic reaches the calibration set's, or once other
        people's targets of the same kind (collateral) have become markedly less likely.

        Target-token statistics decide only once every forget example has been scored; the
        whole-text statistic decides at each re-scoring of the calibration set.
        """
        checking = step - self.calib_step >= self.every or self.calib_value is None
        collateral = self.collateral_check(step, model) if checking and self.collateral else "ok"
        if collateral == "trip":
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
        # Not while other people's values are past the bound: stopping there would keep the
        # damage; the trainer repairs (retain term only) until they are back.
        if forget >= unseen and self.in_bound:
            self.reason = "calibrated"
            return True
        return False

    def collateral_words(self) -> str:
        """The collateral watch's trips in words (numbers only), for logs and the outcome's reason."""
        base, now = self.collateral_base or 0.0, self.collateral_history[-1][1]
        text = (
            f"other people's same-shaped targets went from extraction {base:.2f} to {now:.2f} "
            f"(bound: lose at most {self.collateral_max_loss:g})"
        )
        if self.probe_history:
            text += (
                f", asked with their own sentence alone from {self.probe_base or 0.0:.2f} to "
                f"{self.probe_history[-1][1]:.2f}"
            )
        if self.repair_steps:
            text += (
                f"; {len(self.repair_steps)} repair step(s) on the retain term alone (forget set out, others "
                f"past the bound), from step {self.repair_steps[0]}"
            )
        if self.backoffs:
            lrs = ", ".join(f"{b['lr']:.2g} at step {b['step']}" for b in self.backoffs)
            text += f"; backed off {len(self.backoffs)}x (learning rate lowered to {lrs})"
        return text


def check_stop(
    stop: CalibratedStop,
    step: int,
    raw: torch.nn.Module,
    state: TrainState,
    opt: torch.optim.Optimizer | None = None,
) -> bool:
    """``stop.should_stop``; with collateral watched, the trainable weights are kept (on the CPU;
    each process its share under FSDP / ZeRO: ``state``, the run's
    :class:`~genforget.lm.train_state.TrainState`) at every check that passes. A collateral trip
    puts them back and, while back-offs remain and ``opt`` (the torch optimizer) is given, resets
    its moments, halves its learning rate and lets training go on (returns False); otherwise
    training stops with them (the last weights whose other people's targets were still known)."""
    checks = len(stop.collateral_history)
    if stop.should_stop(step, raw):
        if stop.reason == "collateral" and stop.last_good_step is not None:
            stop.restored_step = stop.snapshots.restore(COLLATERAL, state)
            if opt is not None and len(stop.backoffs) < stop.max_backoffs:
                for group in opt.param_groups:
                    group["lr"] *= BACKOFF_FACTOR
                opt.state.clear()  # the moments point the way that did the damage
                stop.over, stop.retain_boost = 0, 0.0
                stop.backoffs.append(
                    {
                        "step": step,
                        "restored_step": stop.last_good_step,
                        "extraction": stop.collateral_history[-1][1],
                        "lr": opt.param_groups[0]["lr"],
                    }
                )
                stop.history.pop()  # the trip's row: training goes on
                stop.reason = ""
                return False
        return True
    if len(stop.collateral_history) > checks and stop.good:
        stop.snapshots.keep(COLLATERAL, step, state)
    return False


def settle(stop: CalibratedStop, step: int, raw: torch.nn.Module, state: TrainState) -> None:
    """After the last step of a run no stop ended: when the final weights are not good (past the
    collateral bound, or holding the forget set again after a good state had it out), the last
    good weights come back (``stop.reason`` becomes ``collateral_final``), with one exception:
    when no good state ever had the forget set out, final weights that have it out and lost at
    most twice the bound are kept (``collateral_kept``): a forgotten set with some damage,
    reported as such, serves the caller better than weights that never forgot."""
    if not stop.collateral or stop.reason or stop.last_good_step is None:
        return
    stop.collateral_check(step, raw)
    if stop.good:
        return
    from genforget.lm.outcome import FORGOTTEN_AT

    lost = stop.lost
    out = stop.forget_extraction is not None and stop.forget_extraction <= FORGOTTEN_AT
    if not stop.forgotten_good and out and lost <= 2 * stop.collateral_max_loss + 1e-9:
        stop.reason = "collateral_kept"
        return
    stop.reason, stop.restored_step = "collateral_final", stop.snapshots.restore(COLLATERAL, state)


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
    if stop.reason == "collateral_final":  # the run's end, past the bound: earlier weights returned
        step = stop.collateral_history[-1][0]
        row = rows.get(step) or {"step": step}
        if step not in rows:
            history.append(row)
            rows[step] = row
        row.update(stopped=True, stop_reason=stop.reason, restored_step=stop.restored_step)
    for step, extraction, nll in stop.collateral_history:
        if step in rows:
            rows[step].update(collateral_extraction=extraction, collateral_nll=nll)
    for step, extraction in stop.probe_history:
        if step in rows:
            rows[step]["collateral_probe_extraction"] = extraction
    for step in stop.repair_steps:  # steps trained on the retain term alone
        if step in rows:
            rows[step]["repair"] = True
    for b in stop.backoffs:
        if b["step"] in rows:
            rows[b["step"]].update(backoff_restored_step=b["restored_step"], backoff_lr=b["lr"])


def report_stop(accelerator, stop: CalibratedStop, step: int, history: list | None) -> None:
    """Say why training stopped (``accelerator.print``: once, on the main process)."""
    if stop.reason == "collateral":
        accelerator.print(
            f"collateral stop after {step} steps: {stop.collateral_words()}; weights of step "
            f"{stop.restored_step} restored"
        )
        return
    _, forget_value, unseen_value = stop.history[-1]
    accelerator.print(
        f"calibrated stop after {step} steps: forget {stop.statistic} {forget_value:.3f} "
        f">= unseen {unseen_value:.3f}"
    )
