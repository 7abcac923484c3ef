"""Relearn speed of a deletion request: does the unlearned model re-learn this person faster than
a person it never saw?

A request has no oracle retrain, but it has twins (:mod:`genforget.requests.twins`): the located
records with every identifier replaced by a fresh fake of the same shape, never trained on. So one
copy of the unlearned model is fine-tuned on the located records (the windows the pipeline
unlearned, every token a target, as an attacker holding the records would) and the request's own
greedy extraction probes are measured after each budget of steps; another copy is fine-tuned on
the twins' records the same way and extraction of the twins' fake identifiers is measured (probes
built from the twins at the same positions). If the first curve rises faster than the second, the
knowledge was suppressed, not removed. The curves and their gap are
:func:`~genforget.evaluation.audits.relearn_speed.relearn_curve` / :func:`~genforget.evaluation.audits.relearn_speed.curve_gap`,
the same audit the eval harness runs against an oracle retrain.

The twins here are made with one fake per identifier across all of a request's records
(:func:`consistent_twins`): the located records repeat the same person, and a reference that
changed person from record to record would be slower to learn for that reason alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from genforget.evaluation.audits.relearn_speed import BUDGETS, curve_gap, relearn_curve
from genforget.requests.locate import Located, LocateResult
from genforget.requests.match import Identifier, Matcher
from genforget.requests.twins import _TOKEN, TwinMaker, make_twin
from genforget.requests.verify import (
    _probe,
    _row,
    dedup_and_cap,
    extraction_hits,
    request_probes,
    work_probe,
)

# The eval harness's defaults (genforget.evaluation.suite.Suite.relearn_learning_rate / relearn_batch_size;
# a test keeps them equal), so a request's curve reads like the demo report's.
LEARNING_RATE, BATCH_SIZE = 1e-3, 8
ROW_NAME = "relearn speed: largest extraction gap to twins, {lo}-{hi} steps"


def consistent_twins(res: LocateResult, records: list[Located], seed: int = 0) -> list[dict]:
    """Twins of ``records`` (``{"text", "spans"}``) with one fake per identifier across all of
    them (names, emails and digits from one cache; an address written the same way gets the same
    fake), unlike :func:`~genforget.requests.twins.make_twins`, which draws afresh per record."""
    maker, cache = TwinMaker(seed, consistent=True), {}  # salted inside: see TWIN_SEED_SALT
    return [make_twin(r, res, maker, cache) for r in records]


def _twin_hits(rec: Located) -> list:
    """The hits :func:`make_twin` replaced, in the order of the twin's spans (it skips a hit
    overlapping one already replaced)."""
    out, pos = [], 0
    for h in rec.hits:
        if h.start < pos:
            continue
        out.append(h)
        pos = h.end
    return out


def _fake_identifier(h, orig: str, fake: str, ident_value: str) -> str:
    """The fake counterpart of the request's identifier value, so the twin probe's matcher
    accepts the same formats as the request's (a name in either order, a phone spelled another
    way): names map word by word through the occurrence; other types are their fake as written."""
    if h.type != "name":
        return fake
    a, b = _TOKEN.findall(orig), _TOKEN.findall(fake)
    if len(a) != len(b):
        return fake
    swap = {x.casefold(): y for x, y in zip(a, b, strict=True) if x.isalpha()}
    return " ".join(swap.get(w.casefold(), w) for w in ident_value.replace(",", " ").split())


def twin_probes(
    res: LocateResult, req: int, twins: list[dict], max_probes: int = 256, seed: int = 0
) -> list[dict]:
    """Extraction probes of the twins of request ``req``'s records (``twins`` in
    ``res.for_request(req)`` order), built like :func:`~genforget.requests.verify.request_probes`
    at the same positions: prompt = twin text up to the fake value, target = the fake value."""
    probes = []
    region = res.requests[req].region
    for rec, twin in zip(res.for_request(req), twins, strict=True):
        text = twin["text"]
        for h, (s, e) in zip(_twin_hits(rec), twin["spans"], strict=True):
            if h.req != req:
                continue
            if h.type == "work":
                probes.append(work_probe(text, s, e))
                continue
            value = _fake_identifier(h, rec.text[h.start : h.end], text[s:e], res.identifiers[h.ident].value)
            try:
                matcher = Matcher([Identifier(req, h.type, 0, value)], {req: region})
            except ValueError:  # a fake too short for its type's pattern: no probe
                continue
            probes.append(_probe(text[:s], matcher, h.type, text[s:e]))
    return dedup_and_cap(probes, max_probes, seed)


def greedy_rate(model, tok, probes: list[dict]) -> float:
    """Share of ``probes`` whose identifier (or verbatim target) the greedy continuation holds."""
    with torch.no_grad():
        hits = extraction_hits(model, tok, probes)
    return sum(hits) / len(hits)


def check_budgets(budgets: Sequence[int]) -> None:
    """``ValueError`` unless ``budgets`` are at least two distinct ascending step counts from 0."""
    b = list(budgets)
    if len(b) < 2 or b[0] != 0 or b != sorted(set(b)):
        raise ValueError(f"need at least two distinct ascending step counts starting at 0 (got {b})")


def relearn_speed(
    model,
    tok,
    res: LocateResult,
    req: int,
    windows_of,
    budgets: Sequence[int] = BUDGETS,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
) -> dict:
    """The relearn-speed section of request ``req``'s certificate: numbers only.

    ``windows_of(example) -> list[example]`` cuts a record into the windows the pipeline trains
    on. Returns ``{"measured": True, "budgets", "curves": {"located", "twins"}, "area",
    "max_gap", "max_gap_at", ...}``, or ``{"measured": False, "reason"}`` when there is nothing to
    probe.
    """
    check_budgets(budgets)
    records = res.for_request(req)
    probes = request_probes(res, req, seed=seed)
    twins = consistent_twins(res, records, seed)
    t_probes = twin_probes(res, req, twins, seed=seed)
    if not probes or not t_probes:
        return {"measured": False, "reason": "no extraction probe could be built from the located records"}
    located_ex = [
        {"text": w["text"]} for r in records for w in windows_of({"text": r.text, "spans": r.spans()})
    ]
    twin_ex = [{"text": w["text"]} for t in twins for w in windows_of(t)]
    t0 = time.perf_counter()
    curves = {
        "located": relearn_curve(
            model,
            tok,
            located_ex,
            lambda m: greedy_rate(m, tok, probes),
            budgets,
            learning_rate,
            batch_size,
            seed,
        ),
        "twins": relearn_curve(
            model,
            tok,
            twin_ex,
            lambda m: greedy_rate(m, tok, t_probes),
            budgets,
            learning_rate,
            batch_size,
            seed,
        ),
    }
    gap = curve_gap(curves["located"], curves["twins"], budgets)
    return {
        "measured": True,
        "budgets": list(budgets),
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "examples": {"located": len(located_ex), "twins": len(twin_ex)},
        "probes": {"located": len(probes), "twins": len(t_probes)},
        "curves": curves,
        **gap,
        "seconds": time.perf_counter() - t0,
    }


def relearn_row(section: dict, bar: float, gating: bool) -> dict:
    """The certificate's verification row for a measured section: the largest gap, ``<= bar``."""
    b, gap, n = section["budgets"], section["max_gap"], section["probes"]["located"]
    bar_text = f"after <= {bar:.2f}" + ("" if gating else " (shown, not gating)")
    row = _row(ROW_NAME.format(lo=b[0], hi=b[-1]), None, gap, bar_text, bool(gap <= bar), n)
    return dict(row, gating=gating)
