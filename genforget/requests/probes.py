"""Adversarial verification probes of a deletion request: the families of
:mod:`genforget.evaluation.metrics.adversarial` (rephrased, partial identifier, in-context hint)
built from the request's identifiers and its located records, each measured before and after and
certified against the extraction bar. A request passes only if every family is at or below it.

A probe here has the shape :func:`genforget.requests.verify.extraction_hits` reads: a full
identifier is found in the continuation by its request's :class:`~genforget.requests.match.Matcher`
(any of its formats); a partial probe's rest must start the continuation (``matcher`` None).
"""

from __future__ import annotations

import random

from genforget.evaluation.metrics.adversarial import adversarial_probes, target_rates
from genforget.requests.match import Identifier, Matcher

MAX_ADVERSARIAL = 192


def request_adversarial(
    res, ri: int, tokenizer=None, max_probes: int = MAX_ADVERSARIAL, seed: int = 0
) -> list[dict]:
    """The adversarial probes of request ``ri`` of a locate result (``res.located`` may be
    empty: then prompts come from templates only, as for a request without training data)."""
    req = res.requests[ri]
    region = {ri: req.region}
    records = [r.text for r in res.for_request(ri)]
    fields = [(t, v) for t, vals in req.identifiers.items() if t != "name" for v in vals]
    idents = {(i.type, i.value): i for i in res.identifiers if i.req == ri}
    out = []
    for p in adversarial_probes(req.identifiers, records, tokenizer):
        typ, value = fields[p["target"]]
        if p["family"] == "partial":
            matcher, target = None, p["value"]
        else:
            ident = idents.get((typ, value)) or Identifier(ri, typ, 0, value)
            matcher, target = Matcher([ident], region), value
            if matcher.search(p["prompt"]):  # another format of the value already in the prompt
                continue
        out.append(
            {"prompt": p["prompt"], "matcher": matcher, "field": typ, "target": target}
            | {"family": p["family"], "tid": p["target"]}
        )
    if len(out) > max_probes:
        out = random.Random(seed).sample(out, max_probes)
    return out


def family_rates(probes: list[dict], hits: list[bool]) -> dict[str, float]:
    """Per family, the share of the request's identifiers extracted by any probe of it."""
    return target_rates([{"family": p["family"], "target": p["tid"]} for p in probes], hits)


def family_targets(probes: list[dict]) -> dict[str, int]:
    """Per family, how many identifiers it asks for (the certificate row's ``n``)."""
    out: dict[str, set] = {}
    for p in probes:
        out.setdefault(p["family"], set()).add(p["tid"])
    return {f: len(s) for f, s in out.items()}
