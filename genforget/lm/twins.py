"""Never-seen look-alikes of forget examples, and the retain targets that share their shape.

When :func:`genforget.unlearn` is given no calibration set, it makes one: each forget example
with every target character replaced by a random one of the same kind (digit for digit, letter
for letter in the same case, everything else kept), so "555-010-0199" becomes, say,
"381-724-0563" in the same sentence. The calibrated stop then ends training once the forget
examples are no more likely than these twins. Twins are never trained on.

Collateral: forgetting three people's phone numbers must not erase everyone's. Retain examples
that name their targets are watched as given; whole retain texts are searched for strings of the
same shape as the forget targets that hold digits or an ``@`` (phone numbers, IDs, emails,
dates; a bare name's shape would match any two words). Their greedy extraction is watched during
training (see :class:`genforget.lm.safeguards.stopping.CalibratedStop`).
"""

from __future__ import annotations

import random
import re
import string

from genforget.lm.data import normalise_example


def shape_twin(ex: dict, rng: random.Random) -> dict | None:
    """``ex`` with its target characters replaced shape for shape, or None when the example has
    no explicit targets (a whole text has no part that is the person's: nothing to replace)."""
    n = normalise_example(ex)
    if not n["spans"]:
        return None
    chars = list(n["text"])
    for a, b in n["spans"]:
        for i in range(a, b):
            c = chars[i]
            if c.isdigit():
                chars[i] = rng.choice(string.digits)
            elif c.isalpha():
                pool = string.ascii_uppercase if c.isupper() else string.ascii_lowercase
                chars[i] = rng.choice(pool)
    return {"text": "".join(chars), "spans": n["spans"]}


def shape_twins(examples: list[dict], seed: int = 0) -> list[dict]:
    """One twin per forget example that has targets (see :func:`shape_twin`)."""
    rng = random.Random(seed)
    return [t for t in (shape_twin(ex, rng) for ex in examples) if t is not None]


def shape_pattern(value: str) -> str | None:
    """A regex for strings shaped like ``value`` (digit runs by length, letter runs of any length,
    other characters literal), or None for values without a digit or ``@``."""
    value = value.strip()
    if len(value) < 4 or not (any(c.isdigit() for c in value) or "@" in value):
        return None
    out = []
    for run in re.finditer(r"\d+|[^\W\d_]+|.", value):
        s = run.group()
        out.append(rf"\d{{{len(s)}}}" if s.isdigit() else r"[^\W\d_]+" if s.isalpha() else re.escape(s))
    return r"(?<![\w@.])" + "".join(out) + r"(?![\w@])"


def collateral_examples(forget: list[dict], retain: list[dict], limit: int = 64) -> list[dict]:
    """What the collateral watch keeps an eye on (up to ``limit`` examples): retain examples that
    name their own targets (``prompt``/``target``, ``text`` + ``spans``) as given, since the
    caller said what to keep; whole retain texts with spans on every string shaped like a forget
    target. Nothing when the forget targets have no such shape and no retain example has targets."""
    patterns = set()
    for ex in forget:
        n = normalise_example(ex)
        for a, b in n["spans"] or []:
            p = shape_pattern(n["text"][a:b])
            if p:
                patterns.add(p)
    rx = re.compile("|".join(f"(?:{p})" for p in sorted(patterns))) if patterns else None
    out = []
    for ex in retain:
        n = normalise_example(ex)
        if n["spans"]:
            spans = [tuple(s) for s in n["spans"]]
        else:
            spans = [(m.start(), m.end()) for m in rx.finditer(n["text"])] if rx is not None else []
        if spans:
            out.append({"text": n["text"], "spans": spans})
            if len(out) >= limit:
                break
    return out


_SENTENCE_END = re.compile(r"[.!?](?:\s+)|\n+")


def sentence_probes(collateral: list[dict], limit: int = 64) -> list[dict]:
    """Each watched value asked with its own sentence alone (up to ``limit``): the sentence's words
    before the value, without the rest of the record, e.g. "Bob's phone number is" + the number.

    A value the model reproduces deep inside its own training text can still be lost when asked
    the way a user (or an evaluation's probe) asks: the earlier sentences of the record cue it.
    These probes are made from the retain records themselves, so they need no template from the
    caller. A value in its record's first sentence has no other context: nothing new, left out."""
    out: list[dict] = []
    for ex in collateral:
        text = ex["text"]
        for a, b in ex["spans"]:
            start = 0
            for m in _SENTENCE_END.finditer(text, 0, a):
                start = m.end()
            prefix = text[start:a]
            if start == 0 or not prefix.strip():
                continue
            out.append({"text": prefix + text[a:b], "spans": [(len(prefix), len(prefix) + b - a)]})
            if len(out) >= limit:
                return out
    return out
