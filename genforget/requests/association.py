"""``kind: association``: remove a learned association between a protected attribute and an outcome.

```yaml
id: BIAS-2026-0007
kind: association
attribute:                 # the protected attribute, as the records write it
  name: nationality
  values: [Arvenian, Dorelian]
outcome:                   # the decision words the records end in
  positive: approved
  negative: declined
rule:                      # what the decision should follow: a threshold on one number ...
  field: Credit score      # the label written before that number in each record
  positive_if: ">= 5"
# ... or the same rule fitted to decisions known to be fair (records in the same format):
#   learn_from: audited.jsonl
```

Why a rule is required: a record's decision alone cannot say whether it was biased; only a
decision that *disagrees with what a fair decision would have been* can. So the request must
bring the fair rule (``positive_if``) or labelled examples to fit it from (``learn_from``: records
whose decisions are known to be fair; the threshold with the highest accuracy on them is used,
and a fit below :data:`MIN_FIT_ACCURACY` is refused, since then the rule is not a threshold on
that field). Where the records come from somewhere a rule cannot describe, this kind does not
apply. How the records are located is in :mod:`genforget.requests.association_locate`.

The name: what is removed is an *association* the model learned from its data (attribute ->
outcome), not a person or a work; the same request shape covers a spurious feature as well as a
protected attribute.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

from genforget.config import UsageError

MIN_FIT_ACCURACY = 0.95
ASSOCIATION_KEYS = ("attribute", "outcome", "rule")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_NUMBER = r"(-?\d[\d,]*(?:\.\d+)?)"


@dataclass
class Rule:
    """The fair decision: positive when ``number <op> threshold``, the number written after
    ``field`` in the record. ``fitted_on``: labelled examples it was fitted to (0: given)."""

    field: str
    op: str
    threshold: float
    fitted_on: int = 0
    fit_accuracy: float | None = None

    def positive(self, number: float) -> bool:
        return bool(_OPS[self.op](number, self.threshold))

    def describe(self) -> dict:
        """Numbers and labels only (goes into certificates)."""
        out = {"field": self.field, "positive_if": f"{self.op} {self.threshold:g}"}
        if self.fitted_on:
            out.update(fitted_on=self.fitted_on, fit_accuracy=self.fit_accuracy)
        return out


@dataclass
class AssociationSpec:
    """What an association request names: the attribute and its values, the two outcomes, the rule."""

    attribute: str
    values: list[str]
    positive: str
    negative: str
    rule: Rule
    patterns: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        alt = "|".join(re.escape(v) for v in sorted(self.values, key=len, reverse=True))
        out = "|".join(re.escape(v) for v in (self.positive, self.negative))
        self.patterns = {
            "value": re.compile(rf"(?<!\w)(?:{alt})(?!\w)", re.IGNORECASE),
            "outcome": re.compile(rf"(?<!\w)(?:{out})(?!\w)", re.IGNORECASE),
            "number": re.compile(rf"(?<!\w){re.escape(self.rule.field)}[^\d\n-]{{0,12}}?{_NUMBER}", re.I),
        }

    def value_of(self, s: str) -> str:
        """The request's spelling of an attribute value matched in a record."""
        return next(v for v in self.values if v.casefold() == s.casefold())

    def describe(self) -> dict:
        return {
            "attribute": self.attribute,
            "values": list(self.values),
            "outcomes": {"positive": self.positive, "negative": self.negative},
            "rule": self.rule.describe(),
        }


@dataclass
class Decision:
    """A decision record as read: its attribute value(s) (spans), its outcome (the last outcome
    word: the decision) and the rule's number."""

    value: str
    value_spans: list[tuple[int, int]]
    outcome: str  # "positive" | "negative"
    outcome_span: tuple[int, int]
    number: float

    def fair(self, rule: Rule) -> str:
        return "positive" if rule.positive(self.number) else "negative"


def read_decision(text: str, spec: AssociationSpec) -> Decision | None:
    """The record read as a decision, or None when it is not one: it must name exactly one of
    the attribute's values (any number of times), hold an outcome word and the rule's number."""
    vals = list(spec.patterns["value"].finditer(text))
    if not vals or len({spec.value_of(m.group()) for m in vals}) != 1:
        return None
    outs = list(spec.patterns["outcome"].finditer(text))
    num = spec.patterns["number"].search(text)
    if not outs or num is None:
        return None
    last = outs[-1]
    kind = "positive" if last.group().casefold() == spec.positive.casefold() else "negative"
    return Decision(
        spec.value_of(vals[0].group()),
        [m.span() for m in vals],
        kind,
        last.span(),
        float(num.group(1).replace(",", "")),
    )


def fit_rule(field_label: str, examples: list[str], spec_no_rule: dict) -> Rule:
    """The threshold rule on ``field_label`` that best reproduces the decisions of ``examples``
    (texts whose decisions are fair): every cut between two observed numbers, both directions;
    refused (UsageError) below :data:`MIN_FIT_ACCURACY`."""
    probe = AssociationSpec(**spec_no_rule, rule=Rule(field_label, ">=", 0.0))
    pts = []
    for t in examples:
        d = read_decision(t, probe)
        if d is not None:
            pts.append((d.number, d.outcome == "positive"))
    if len(pts) < 4:
        raise UsageError(
            f"rule.learn_from: only {len(pts)} of {len(examples)} examples are decision records naming "
            f"one attribute value, an outcome and {field_label!r} followed by a number; give at least 4"
        )
    xs = sorted({x for x, _ in pts})
    cuts = [xs[0] - 1] + [(a + b) / 2 for a, b in zip(xs, xs[1:], strict=False)] + [xs[-1] + 1]
    best = (-1.0, ">=", 0.0)
    for t in cuts:
        for op in (">=", "<="):
            acc = sum(_OPS[op](x, t) == y for x, y in pts) / len(pts)
            if acc > best[0]:
                best = (acc, op, t)
    acc, op, t = best
    if acc < MIN_FIT_ACCURACY:
        raise UsageError(
            f"rule.learn_from: no threshold on {field_label!r} reproduces the labelled decisions (best "
            f"accuracy {acc:.2f} < {MIN_FIT_ACCURACY}): the fair rule is not a threshold on this field; "
            "write it as rule.positive_if or name another field"
        )
    return Rule(field_label, op, t, fitted_on=len(pts), fit_accuracy=acc)


def _texts_of(path: Path, source: str) -> list[str]:
    from genforget.requests.locate import iter_records

    if not path.exists():
        raise UsageError(f"{source}: rule.learn_from: not found: {path}")
    return [t for _, t in iter_records(path)]


def parse_association(data: dict, source: str, base_dir: Path | None = None) -> AssociationSpec:
    """Validate the ``attribute`` / ``outcome`` / ``rule`` sections of a ``kind: association``
    request (see the module docstring); every problem names the field and the fix."""
    attr = data.get("attribute")
    if not isinstance(attr, dict) or not isinstance(attr.get("name"), str) or not attr["name"].strip():
        raise UsageError(f"{source}: kind: association needs attribute: {{name: ..., values: [...]}}")
    values = attr.get("values")
    if (
        not isinstance(values, list)
        or len(values) < 2
        or not all(isinstance(v, str) and v.strip() for v in values)
        or len({v.strip().casefold() for v in values}) != len(values)
    ):
        raise UsageError(
            f"{source}: attribute.values must list two or more distinct values as the records write "
            "them (e.g. [Arvenian, Dorelian])"
        )
    unknown = sorted(set(attr) - {"name", "values"})
    if unknown:
        raise UsageError(f"{source}: attribute: unknown key(s) {unknown}; it takes name and values")
    out = data.get("outcome")
    if not isinstance(out, dict) or set(out) != {"positive", "negative"}:
        raise UsageError(
            f"{source}: outcome must be {{positive: <word>, negative: <word>}} (e.g. approved/declined)"
        )
    pos, neg = (str(out[k]).strip() for k in ("positive", "negative"))
    if not pos or not neg or pos.casefold() == neg.casefold():
        raise UsageError(f"{source}: outcome.positive and outcome.negative must be two different words")
    rule = data.get("rule")
    if not isinstance(rule, dict) or not isinstance(rule.get("field"), str) or not rule["field"].strip():
        raise UsageError(
            f"{source}: kind: association needs rule: {{field: <label before the number>, positive_if: "
            "'>= 5'}} or {field: ..., learn_from: <labelled records>}: without a fair rule a biased "
            "decision cannot be told from a fair one"
        )
    extra = sorted(set(rule) - {"field", "positive_if", "learn_from"})
    if extra:
        raise UsageError(
            f"{source}: rule: unknown key(s) {extra}; it takes field and positive_if or learn_from"
        )
    if ("positive_if" in rule) == ("learn_from" in rule):
        raise UsageError(
            f"{source}: rule needs exactly one of positive_if (e.g. '>= 5') and learn_from (a file)"
        )
    base = {
        "attribute": attr["name"].strip(),
        "values": [v.strip() for v in values],
        "positive": pos,
        "negative": neg,
    }
    label = rule["field"].strip()
    if "positive_if" in rule:
        m = re.fullmatch(rf"\s*(>=|>|<=|<)\s*{_NUMBER}\s*", str(rule["positive_if"]))
        if not m:
            raise UsageError(
                f"{source}: rule.positive_if must be a comparison with a number, e.g. '>= 5' (got "
                f"{rule['positive_if']!r})"
            )
        return AssociationSpec(**base, rule=Rule(label, m.group(1), float(m.group(2).replace(",", ""))))
    p = Path(str(rule["learn_from"]))
    if not p.is_absolute() and base_dir is not None and not p.exists():
        p = base_dir / p
    return AssociationSpec(**base, rule=fit_rule(label, _texts_of(p, source), base))


def spec_json(spec: AssociationSpec) -> str:
    """Canonical JSON of a spec (what the certificate's content HMAC covers)."""
    return json.dumps(spec.describe(), sort_keys=True)
