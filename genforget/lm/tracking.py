"""Experiment tracking for genforget's own LM loop, through accelerate's trackers.

``report_to`` (``none``, ``tensorboard``, ``wandb``, ``trackio``, ``all``, or several joined by
commas) names the trackers, as ``TrainingArguments.report_to`` does for ``Trainer``; they are
accelerate's (``Accelerator(log_with=...)``, ``init_trackers``, ``log``), so they run on the main
process only. Logged: the config (numbers, strings, flags), per logging step the loss, forget and
retain NLL, learning rate, tokens and seconds, the calibrated stop's statistic (forget vs never-seen
data) at its checks, the divergence guard's state, and at the end the outcome's figures. Never
example text or values: only numbers computed from them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "wandb", "trackio")
# The package each tracker needs, for the error that names the fix.
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def tracker_names(report_to: str) -> list[str]:
    """``report_to`` as a list of tracker names (``[]`` for ``none``); a ``ValueError`` names a wrong one."""
    names = [n.strip().lower() for n in str(report_to or "none").split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    bad = [n for n in names if n not in (*TRACKERS, "all")]
    if bad or ("none" in names):
        raise ValueError(
            f"report_to {report_to!r}: expected none, all, or any of {', '.join(TRACKERS)} (comma-separated)"
        )
    return names


def _flat_config(config: Any) -> dict:
    # TensorBoard's hparams take numbers, strings and flags only; lists become strings.
    out = {}
    for k, v in dataclasses.asdict(config).items():
        out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class RunTracker:
    """The trackers of one :func:`~genforget.lm.trainer.unlearn_lm` run (a no-op for ``none``)."""

    def __init__(self, accelerator, config, project: str = "genforget") -> None:
        self.accelerator = accelerator
        self.names = tracker_names(config.report_to)
        self.optimizer = self.stop = self.guard = None
        self._stop_seen = 0
        if not self.names:
            return
        from accelerate.tracking import filter_trackers

        logging_dir = Path(config.logging_dir or "genforget_logs")
        wanted = ["all"] if "all" in self.names else self.names
        trackers = filter_trackers(wanted, logging_dir)
        got = {str(getattr(t, "value", t)) for t in trackers}
        missing = [n for n in self.names if n != "all" and n not in got]
        if missing or not trackers:
            need = " ".join(_PACKAGES[n] for n in missing) or " / ".join(_PACKAGES.values())
            raise ValueError(
                f"report_to {config.report_to!r}: the tracker package is not installed; "
                f"pip install {need} (or genforget[tracking]), or set report_to none"
            )
        if not accelerator.log_with:
            # Accelerator(log_with=...) is the usual way; a run given an accelerator without
            # trackers gets them here, before init_trackers reads them.
            accelerator.log_with = trackers
            accelerator.project_configuration.logging_dir = str(logging_dir)
        accelerator.init_trackers(project, config=_flat_config(config))  # main process only

    @property
    def on(self) -> bool:
        return bool(self.names)

    def watch(self, optimizer=None, stop=None, guard=None) -> None:
        """What the per-step rows are read with: the learning rate, the stop's checks, the guard."""
        self.optimizer, self.stop, self.guard = optimizer, stop, guard

    def log_rows(self, rows: list[dict]) -> None:
        """History rows (``step`` 0-based) as scalars at step ``step + 1`` (optimizer steps done)."""
        if not self.on or not rows:
            return
        for row in rows:
            values = {
                f"train/{k}": float(row[k])
                for k in ("loss", "forget_nll", "retain_nll", "tokens", "seconds")
                if k in row
            }
            if self.optimizer is not None:
                values["train/learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
            self.accelerator.log(values, step=int(row["step"]) + 1)
        self._log_state(int(rows[-1]["step"]) + 1)

    def _log_state(self, step: int) -> None:
        if self.stop is not None:
            for at, forget, unseen in self.stop.history[self._stop_seen :]:
                if not (math.isnan(forget) or math.isnan(unseen)):
                    self.accelerator.log(
                        {"calibration/forget": forget, "calibration/unseen": unseen}, step=int(at)
                    )
            self._stop_seen = len(self.stop.history)
        if self.guard is not None:
            self.accelerator.log(
                {"guard/good_step": self.guard.good_step, "guard/tripped": float(bool(self.guard.events))},
                step=step,
            )

    def finish(self, outcome: dict | None, step: int) -> None:
        """The outcome's before/after figures, then the trackers closed (files flushed)."""
        if not self.on:
            return
        values = {}
        for key, figs in (outcome or {}).items():
            if isinstance(figs, dict) and key.endswith(("_before", "_after")):
                values.update({f"outcome/{key}_{k}": float(v) for k, v in figs.items()})
        if outcome and "status" in outcome:
            values["outcome/forgotten"] = float(outcome["status"] == "forgotten")
        if values:
            self.accelerator.log(values, step=step)
        # Not accelerator.end_training(): that also ends the process group the caller still needs.
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers.clear()
