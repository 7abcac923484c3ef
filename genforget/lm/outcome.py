"""The outcome every LM unlearning run ends with: did the forget set go, did the rest stay?

Two cheap figures per set, before and after, from one teacher-forced forward each:

- **extraction**: the share of target spans greedy decoding reproduces, token for token, from
  the text before them. With the true prefix fed in, "every target token is the argmax" is
  exactly "greedy decoding writes the span", so no generation loop is needed.
- **nll**: the mean negative log-likelihood of the target tokens (nats per token).
- **accuracy**: the share of target tokens that are the argmax (whole texts, where exact
  reproduction of a long span says little, are judged on it).

The forget figures are taken on the forget examples as given (not the refusals or relabelled
targets a method trains toward); the retain figures on the retain texts' strings shaped like the
forget targets when the caller found such (``collateral``: other people's phone numbers, emails)
and otherwise on the retain examples' own targets. Status:

- ``forgotten``: forget extraction at most :data:`FORGOTTEN_AT` after, something moved, and the
  retain figures held (extraction and token accuracy fell by at most :data:`RETAIN_DROP`);
- ``partial``: the forget figures moved but the set is still extractable, or the retain figures
  fell further than that;
- ``unchanged``: neither forget extraction fell nor forget NLL rose by :data:`MIN_NLL_RISE`.

``partial`` and ``unchanged`` raise :class:`OutcomeWarning`; ``genforget unlearn`` exits with
:data:`EXIT_NOT_FORGOTTEN` unless ``--allow_partial true``.
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from genforget.lm.data import Collator, tokenize_all

if TYPE_CHECKING:
    from genforget.lm.tracking import RunTracker

FORGOTTEN_AT = 0.10  # forget extraction at or below this counts as forgotten
RETAIN_DROP = 0.10  # the retain figures may fall this much (absolute) and still count as kept
MIN_NLL_RISE = 0.05  # nats per token: less, with extraction not lower, is no change at all
MAX_FORGET, MAX_RETAIN = 256, 64  # examples scored (a seeded sample above that): the check stays cheap
EXIT_NOT_FORGOTTEN = 3  # `genforget unlearn` exit code for partial / unchanged (2 = usage error)


class OutcomeWarning(UserWarning):
    """An unlearning run ended ``partial`` or ``unchanged`` (see :class:`Outcome`)."""


@dataclass
class Figures:
    """One set's figures under one model (see the module docstring)."""

    extraction: float
    nll: float
    accuracy: float
    spans: int


@dataclass
class Outcome:
    """Forget and retain figures before and after a run, its status and the reason in words."""

    status: str  # forgotten | partial | unchanged
    reason: str
    forget_before: Figures
    forget_after: Figures
    retain_before: Figures | None = None
    retain_after: Figures | None = None
    retain_measured_on: str = ""  # "collateral" (same-shaped strings of retain texts) | "retain" | ""
    events: list[str] = field(default_factory=list)
    lora_targets: dict | None = None  # what the adapter wrapped (genforget.adapters.LoraTargets)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Outcome:
        figs = {
            k: Figures(**v) if isinstance(v, dict) else v
            for k, v in d.items()
            if k.endswith(("_before", "_after"))
        }
        return cls(**{**d, **figs})

    def line(self) -> str:
        return f"unlearning outcome: {self.status}: {self.reason}"


def _spans(mask: torch.Tensor) -> list[tuple[int, int]]:
    """``[start, end)`` runs of consecutive target positions in one row's target mask."""
    out, start = [], None
    for t, is_target in enumerate(mask.tolist() + [False]):
        if is_target and start is None:
            start = t
        elif not is_target and start is not None:
            out.append((start, t))
            start = None
    return out


@torch.no_grad()
def measure(model: torch.nn.Module, feats: list[dict], collate: Collator, batch_size: int = 16) -> Figures:
    """:class:`Figures` of ``feats`` (tokenized examples) under ``model`` (eval mode, no grad)."""
    from genforget.lm.scoring import target_logits

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = spans = tokens = correct = 0
    nll_sum = 0.0
    for i in range(0, len(feats), batch_size):
        chunk = [{k: f[k] for k in ("input_ids", "labels")} for f in feats[i : i + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        logits, mask = target_logits(model, batch)
        targets = batch["labels"][:, 1:][mask]
        # In chunks of rows: the float32 log-softmax of a large vocabulary is never held whole.
        ok = torch.empty(len(targets), dtype=torch.bool, device=device)
        for a in range(0, len(targets), 512):
            lg = logits[a : a + 512].float()
            nll_sum += torch.nn.functional.cross_entropy(lg, targets[a : a + 512], reduction="sum").item()
            ok[a : a + 512] = lg.argmax(-1) == targets[a : a + 512]
        hit = torch.zeros(mask.shape, dtype=torch.bool, device=device).masked_scatter(mask, ok)
        tokens += len(targets)
        correct += int(ok.sum())
        for row in range(mask.shape[0]):
            for a, b in _spans(mask[row]):
                spans += 1
                hits += bool(hit[row, a:b].all())
    model.train(was_training)
    return Figures(
        extraction=hits / max(1, spans),
        nll=nll_sum / max(1, tokens),
        accuracy=correct / max(1, tokens),
        spans=spans,
    )


def _sample(examples: list[dict], k: int, seed: int) -> list[dict]:
    return examples if len(examples) <= k else random.Random(seed).sample(examples, k)


class OutcomeProbe:
    """Measures the forget and retain sets before and after a run (see the module docstring)."""

    def __init__(
        self,
        forget: list[dict],
        retain: list[dict] | None,
        tokenizer,
        max_length: int,
        collateral: list[dict] | None = None,
        seed: int = 0,
    ) -> None:
        self.collate = Collator(tokenizer)  # its pad id, else EOS
        source = collateral or retain or []
        self.retain_measured_on = ("collateral" if collateral else "retain") if source else ""
        with warnings.catch_warnings():  # truncation was already reported when training data was made
            warnings.simplefilter("ignore")
            self.forget = tokenize_all(_sample(forget, MAX_FORGET, seed), tokenizer, max_length, "forget")
            self.retain = tokenize_all(_sample(source, MAX_RETAIN, seed), tokenizer, max_length, "retain")
        self.before: tuple[Figures, Figures | None] | None = None

    def _measure(self, model: torch.nn.Module) -> tuple[Figures, Figures | None]:
        retain = measure(model, self.retain, self.collate) if self.retain else None
        return measure(model, self.forget, self.collate), retain

    def start(self, model: torch.nn.Module) -> None:
        """Measure before training."""
        self.before = self._measure(model)

    def finish(self, model: torch.nn.Module, events: list[str]) -> Outcome:
        """Measure after training and decide the status; ``events`` (stops, back-offs) join the reason."""
        (fb, rb), (fa, ra) = self.before, self._measure(model)
        return decide(fb, fa, rb, ra, events, self.retain_measured_on)


def decide(
    fb: Figures,
    fa: Figures,
    rb: Figures | None,
    ra: Figures | None,
    events: list[str],
    retain_measured_on: str = "",
) -> Outcome:
    """The :class:`Outcome` of before/after figures (rules in the module docstring)."""
    moved = fa.extraction < fb.extraction or fa.nll - fb.nll >= MIN_NLL_RISE
    parts = [
        f"forget extraction {fb.extraction:.2f} -> {fa.extraction:.2f} (NLL {fb.nll:.2f} -> {fa.nll:.2f})"
    ]
    if fb.extraction <= FORGOTTEN_AT:
        parts.append("the forget set was barely extractable before")
    damaged = []
    if rb is not None and ra is not None:
        # Whole-text retain examples are one long span each, which greedy decoding almost never
        # reproduces whole: "0.00 -> 0.00" would read as a measure when it is none, so the line
        # says token accuracy carries the retain figure then.
        if rb.extraction <= FORGOTTEN_AT and ra.extraction <= FORGOTTEN_AT:
            parts.append(
                f"retain token accuracy {rb.accuracy:.2f} -> {ra.accuracy:.2f} "
                f"(retain spans not extractable whole before: {rb.extraction:.2f})"
            )
        else:
            parts.append(
                f"retain extraction {rb.extraction:.2f} -> {ra.extraction:.2f}, "
                f"token accuracy {rb.accuracy:.2f} -> {ra.accuracy:.2f}"
            )
        if rb.extraction - ra.extraction > RETAIN_DROP:
            damaged.append(f"retain extraction fell by {rb.extraction - ra.extraction:.2f}")
        if rb.accuracy - ra.accuracy > RETAIN_DROP:
            damaged.append(f"retain token accuracy fell by {rb.accuracy - ra.accuracy:.2f}")
    if not moved:
        status = "unchanged"
        parts.insert(0, f"forget figures did not move (NLL rose < {MIN_NLL_RISE})")
    elif fa.extraction > FORGOTTEN_AT:
        status = "partial"
        parts.insert(0, f"forget set still extractable ({fa.extraction:.2f} > {FORGOTTEN_AT})")
    elif damaged:
        status = "partial"
    else:
        status = "forgotten"
    if damaged:
        parts.insert(0, f"collateral damage beyond {RETAIN_DROP}: " + ", ".join(damaged))
    reason = "; ".join(parts + events)
    return Outcome(status, reason, fb, fa, rb, ra, retain_measured_on, list(events))


def run_events(stop, guard, max_steps: int, one_shot: bool = False) -> list[str]:
    """What happened during a run, in words with numbers only: collateral back-offs, what ended it
    (calibrated stop, collateral stop, divergence guard) or the step budget used up."""
    if one_shot:
        return ["one closed-form update (no step budget)"]
    events = []
    reason = stop.reason if stop is not None else ""
    if stop is not None and (stop.backoffs or stop.repair_steps or reason.startswith("collateral")):
        events.append(f"collateral watch: {stop.collateral_words()}")
    if reason == "collateral":
        events.append(
            f"stopped at step {stop.history[-1][0]} of {max_steps} with the weights of step {stop.restored_step}"
        )
    elif reason == "calibrated":
        step, forget, unseen = stop.history[-1]
        events.append(
            f"calibrated stop at step {step} of {max_steps} (forget {stop.statistic} {forget:.2f} reached "
            f"never-seen data's {unseen:.2f})"
        )
    if guard is not None and guard.events:
        trip = guard.events[-1]
        events.append(
            f"divergence guard stopped the run at step {trip['step']} of {max_steps} with the weights "
            f"of step {trip['restored_step']}"
        )
    if reason == "collateral_kept":
        events.append(
            f"ran all {max_steps} steps; the final weights, the only ones with the forget set out, were "
            f"kept though past the collateral bound (by at most twice it)"
        )
    if reason == "collateral_final":
        events.append(
            f"the final weights were past the collateral bound: those of step {stop.restored_step}, "
            "the last within it, were returned"
        )
    if not events or (reason == "" and not (guard is not None and guard.events)):
        events.append(f"ran all {max_steps} step{'s' if max_steps != 1 else ''}")
    return events


def report(outcome: Outcome, accelerator) -> None:
    """Print the outcome line (main process) and warn when it is not ``forgotten``."""
    accelerator.print(outcome.line())
    if outcome.status != "forgotten" and accelerator.is_main_process:
        warnings.warn(outcome.line(), OutcomeWarning, stacklevel=3)


def finish_run(
    probe: OutcomeProbe,
    model,
    events: list[str],
    accelerator,
    outcome: dict | None,
    tracker: RunTracker | None = None,
    step: int = 0,
) -> None:
    """Measure the run's outcome, print it, warn unless forgotten, hand it to the caller (and to
    the trackers, which are then closed)."""
    from genforget.adapters import lora_targets_of

    result = probe.finish(model, events)
    raw = accelerator.unwrap_model(model)
    result.lora_targets = lora_targets_of(raw)
    report(result, accelerator)
    if outcome is not None:
        outcome.update(result.to_dict())
    if tracker is not None:
        tracker.finish(result.to_dict(), step)
