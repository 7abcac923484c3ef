"""Locating the records behind a learned association, and their counterfactual twins.

One streamed pass over TRAIN (the same readers as :func:`genforget.requests.locate.locate`):
every record is read as a decision (:func:`~genforget.requests.association.read_decision`:
one attribute value, an outcome word, the rule's number); the others are skipped. A decision
*disagrees* when its outcome is not the rule's. Disagreement alone is not bias (a fair process
has errors too), so the attribute is considered: per value, its wrongful positives are set
against its wrongful negatives, and a value *leans* one way when a two-sided binomial test on
those two counts gives p < :data:`LEAN_ALPHA` (noise leans neither way). A record is located
when it disagrees in the direction its value leans: a wrongful approval of a favoured value, a
wrongful decline of a disfavoured one. When every value leans the same way the disagreements are
a property of the process (e.g. leniency for all), not of the attribute: nothing is located,
and the result says so.

The retain side is built from what the rule says: for each located record its *counterfactual
twins* (the same record, the attribute set to each other value, the decision the rule gives)
and its *corrected* record (the same record, the rule's decision), which a preference method
takes as the preferred answer; plus a seeded reservoir sample of records that agree with the
rule.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from genforget.requests.association import AssociationSpec, Decision, read_decision
from genforget.requests.match import case_like

LEAN_ALPHA = 0.05


@dataclass
class LocatedDecision:
    rid: str
    text: str
    decision: Decision


@dataclass
class AssociationLocateResult:
    """Located records (texts: keep in memory only) and counts (numbers only: reportable)."""

    spec: AssociationSpec
    located: list[LocatedDecision]
    retain: list[LocatedDecision]  # a seeded sample of decisions that agree with the rule
    n_records: int = 0
    n_decisions: int = 0
    counts: dict = field(
        default_factory=dict
    )  # value -> {"records", "wrongful_positive", "wrongful_negative"}
    leans: dict = field(default_factory=dict)  # value -> "favoured" | "disfavoured" | "none"
    reason: str = ""  # why nothing was located, when nothing was
    seconds: float = 0.0

    def summary(self) -> dict:
        """What a certificate or report may hold: counts, leans, the rule; no text."""
        return {
            "records_scanned": self.n_records,
            "decision_records": self.n_decisions,
            "by_value": self.counts,
            "leans": self.leans,
            "located": len(self.located),
            "reason": self.reason,
            "seconds": self.seconds,
        }


def _lean(pos: int, neg: int) -> str:
    from scipy.stats import binomtest

    if pos + neg == 0 or binomtest(pos, pos + neg, 0.5).pvalue >= LEAN_ALPHA:
        return "none"
    return "favoured" if pos > neg else "disfavoured"


def locate_association(
    spec: AssociationSpec,
    data: str | Path,
    text_field: str = "text",
    retain_size: int = 256,
    seed: int = 0,
) -> AssociationLocateResult:
    """One pass over ``data``: the records whose decision disagrees with the rule in the
    direction their attribute value leans (see the module docstring)."""
    from genforget.requests.locate import iter_records

    t0 = time.perf_counter()
    rng = random.Random(seed)
    res = AssociationLocateResult(spec, [], [])
    res.counts = {v: {"records": 0, "wrongful_positive": 0, "wrongful_negative": 0} for v in spec.values}
    disagreeing: list[LocatedDecision] = []
    seen_agree = 0
    for rid, text in iter_records(data, text_field):
        res.n_records += 1
        d = read_decision(text, spec)
        if d is None:
            continue
        res.n_decisions += 1
        c = res.counts[d.value]
        c["records"] += 1
        if d.outcome == d.fair(spec.rule):
            seen_agree += 1  # reservoir sample (Vitter's R): seeded, bounded memory
            if len(res.retain) < retain_size:
                res.retain.append(LocatedDecision(rid, text, d))
            elif (j := rng.randrange(seen_agree)) < retain_size:
                res.retain[j] = LocatedDecision(rid, text, d)
            continue
        c["wrongful_positive" if d.outcome == "positive" else "wrongful_negative"] += 1
        disagreeing.append(LocatedDecision(rid, text, d))
    res.leans = {v: _lean(c["wrongful_positive"], c["wrongful_negative"]) for v, c in res.counts.items()}
    leaning = {lean for lean in res.leans.values() if lean != "none"}
    if not disagreeing:
        res.reason = "every decision agrees with the rule"
    elif not leaning:
        res.reason = "the disagreements lean neither way for any value: noise, not an association"
    elif len(leaning) == 1 and "none" not in res.leans.values():
        res.reason = f"every value leans the same way ({leaning.pop()}): not associated with the attribute"
    else:
        want = {"favoured": "positive", "disfavoured": "negative"}
        res.located = [r for r in disagreeing if want.get(res.leans[r.decision.value]) == r.decision.outcome]
    res.seconds = time.perf_counter() - t0
    return res


def precision_recall(located_rids: set[str], truth_rids: set[str]) -> dict[str, float]:
    """Precision and recall of located record ids against the true ones (1.0 for empty sets)."""
    hits = len(located_rids & truth_rids)
    return {
        "precision": hits / len(located_rids) if located_rids else 1.0,
        "recall": hits / len(truth_rids) if truth_rids else 1.0,
    }


def rewrite(text: str, d: Decision, spec: AssociationSpec, value: str | None, outcome: str) -> dict:
    """``{"text", "spans"}``: the record with every attribute occurrence set to ``value`` (None:
    kept) and its decision set to ``outcome`` ("positive" / "negative"); the span is the decision."""
    edits = [(a, b, case_like(value, text[a:b])) for a, b in d.value_spans] if value else []
    word = spec.positive if outcome == "positive" else spec.negative
    edits.append((*d.outcome_span, case_like(word, text[slice(*d.outcome_span)])))
    out, pos, span = [], 0, (0, 0)
    for a, b, new in sorted(edits):
        out.append(text[pos:a])
        start = sum(len(s) for s in out)
        out.append(new)
        if (a, b) == d.outcome_span:
            span = (start, start + len(new))
        pos = b
    out.append(text[pos:])
    return {"text": "".join(out), "spans": [span]}


def twins(rec: LocatedDecision, spec: AssociationSpec) -> list[dict]:
    """The record with the attribute set to each *other* value and the rule's decision."""
    fair = rec.decision.fair(spec.rule)
    return [rewrite(rec.text, rec.decision, spec, v, fair) for v in spec.values if v != rec.decision.value]


def corrected(rec: LocatedDecision, spec: AssociationSpec) -> dict:
    """The record as the rule would have decided it (the preferred answer of a preference pair)."""
    return rewrite(rec.text, rec.decision, spec, None, rec.decision.fair(spec.rule))


def unlearning_sets(res: AssociationLocateResult) -> dict[str, list[dict]]:
    """The example sets of an association request.

    ``forget``: each located record with its decision as the span, and ``chosen`` (the corrected
    record: a preference method's preferred answer; methods without one ignore it); ``retain``:
    the twins and the corrected records with their decisions as spans (the fair decision for
    every value), then the agreeing sample as whole texts (the rest of what the model knows);
    ``calibration``: each located record's twins with the *located* decision, for the
    calibrated stop (``calibration_statistic: nll``): it stops once the located records'
    decisions are no more likely than the same decisions for the same applicants of another
    value."""
    spec = res.spec
    forget, retain, calib = [], [], []
    for r in res.located:
        span = rewrite(r.text, r.decision, spec, None, r.decision.outcome)
        fixed = corrected(r, spec)
        forget.append({**span, "chosen": fixed})
        retain += [*twins(r, spec), fixed]
        calib += [
            rewrite(r.text, r.decision, spec, v, r.decision.outcome)
            for v in spec.values
            if v != r.decision.value
        ]
    retain += [{"text": r.text} for r in res.retain]
    return {"forget": forget, "retain": retain, "calibration": calib}
