"""Verification of a deletion: probes made from the located records, measured before and after.

- **extraction**: for each identifier occurrence, the record's text up to it is the prompt
  (occurrences whose value already appears earlier in the prompt are skipped: reproducing it
  would be copying from the context, not recall); a hit is the identifier found, in any of its
  formats, in the greedy continuation (and in any of ``k`` sampled ones). ``kind: work``: the
  text up to a shared region plus its first words is the prompt, the region's next words the
  target (verbatim extraction).
- **membership**: min-k % of the located records (members) against their twins (never seen):
  the ratio of the means (1.0 = alike) and, from 5 records on, the AUC (0.5 = alike).
- **retained capability**: on a sample of records holding no identifier, extraction of the
  emails, phone numbers and ID numbers they hold (found by generic patterns) and perplexity.
- **collateral**: the same on the neighbours' records (same surname or street).
"""

from __future__ import annotations

import random
import re

import torch

from genforget.evaluation.metrics.extraction import generate, target_budget, verbatim_hits
from genforget.evaluation.metrics.likelihood import mia_auc, min_k_score, perplexity, token_stats
from genforget.requests.locate import Located, LocateResult
from genforget.requests.match import Identifier, Matcher

GENERIC = {
    "email": r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+",
    "phone": r"(?<![\w+])(?:\+?\d{1,3}[ .\-]?)?\(?\d{3}\)?[ .\-]?\d{3}[ .\-]?\d{4}(?!\d)",
    "id_number": r"(?<!\w)[A-Z]{2,3}-?\d{5,}(?!\w)",
}
MAX_PROMPT_CHARS = 400
WORK_PROMPT_WORDS, WORK_TARGET_WORDS = 8, 8
MIN_AUC_RECORDS = 5


def _probe(prompt: str, matcher: Matcher, typ: str, target: str) -> dict | None:
    prompt = prompt.rstrip()[-MAX_PROMPT_CHARS:]
    if not prompt.strip() or matcher.search(prompt):
        return None
    return {"prompt": prompt, "matcher": matcher, "field": typ, "target": target}


def work_probe(text: str, start: int, end: int) -> dict | None:
    """The verbatim probe of a work region ``text[start:end]``: the text up to its first
    ``WORK_PROMPT_WORDS`` words is the prompt, the next ``WORK_TARGET_WORDS`` words the target."""
    words = list(re.finditer(r"\S+", text[start:end]))
    if len(words) < WORK_PROMPT_WORDS + 2:
        return None
    cut = start + words[WORK_PROMPT_WORDS - 1].end()
    tgt = " ".join(w.group() for w in words[WORK_PROMPT_WORDS : WORK_PROMPT_WORDS + WORK_TARGET_WORDS])
    return {"prompt": text[:cut][-MAX_PROMPT_CHARS:], "matcher": None, "field": "work", "target": tgt}


def dedup_and_cap(probes: list[dict | None], max_probes: int, seed: int) -> list[dict]:
    """``probes`` without ``None`` and repeated (prompt, target) pairs, sampled down to
    ``max_probes`` with ``seed``."""
    out, seen = [], set()
    for p in probes:
        if p is not None and (p["prompt"], p["target"]) not in seen:
            seen.add((p["prompt"], p["target"]))
            out.append(p)
    if len(out) > max_probes:
        out = random.Random(seed).sample(out, max_probes)
    return out


def request_probes(res: LocateResult, req: int, max_probes: int = 256, seed: int = 0) -> list[dict]:
    """Extraction probes of request ``req`` from its located records (deduplicated, capped)."""
    probes = []
    region = res.requests[req].region
    for rec in res.for_request(req):
        for h in rec.hits:
            if h.req != req:
                continue
            if h.type == "work":
                probes.append(work_probe(rec.text, h.start, h.end))
            else:
                ident = res.identifiers[h.ident]
                matcher = Matcher([ident], {ident.req: region})
                probes.append(_probe(rec.text[: h.start], matcher, h.type, rec.text[h.start : h.end]))
    return dedup_and_cap(probes, max_probes, seed)


def generic_probes(texts: list[str], max_probes: int = 128, seed: int = 0) -> list[dict]:
    """Probes for the emails / phone numbers / ID numbers other people's records hold."""
    out = []
    for text in texts:
        for typ, gp in GENERIC.items():
            for m in re.finditer(gp, text):
                matcher = Matcher([Identifier(0, typ, 0, m.group())])
                p = _probe(text[: m.start()], matcher, typ, m.group())
                if p is not None:
                    out.append(p)
    if len(out) > max_probes:
        out = random.Random(seed).sample(out, max_probes)
    return out


def extraction_rate(model, tok, probes: list[dict], samples: int = 0, seed: int = 0) -> float | None:
    """Share of probes whose identifier appears in the greedy continuation (``samples`` = 0), or
    in any of ``samples`` sampled continuations."""
    hits = extraction_hits(model, tok, probes, samples, seed)
    return sum(hits) / len(hits) if hits else None


def by_type(probes: list[dict], hits: list[bool]) -> dict[str, float]:
    """Extraction rate per identifier type."""
    out = {}
    for t in sorted({p["field"] for p in probes}):
        sel = [h for p, h in zip(probes, hits, strict=True) if p["field"] == t]
        out[t] = sum(sel) / len(sel)
    return out


def extraction_hits(model, tok, probes: list[dict], samples: int = 0, seed: int = 0) -> list[bool]:
    """Per probe: is its identifier in the greedy continuation (or any of ``samples``)?"""
    if not probes:
        return []
    budget = target_budget(tok, [p["target"] for p in probes], extra=4)
    gens = generate(model, tok, [p["prompt"] for p in probes], budget, num_samples=samples, seed=seed)
    hits = []
    for p, g in zip(probes, gens, strict=True):
        outs = g if samples else [g]
        if p["matcher"] is None:
            hits.append(any(verbatim_hits([o], [p["target"]])[0] for o in outs))
        else:
            hits.append(any(p["matcher"].search(o) for o in outs))
    return hits


def _min_k(model, tok, texts: list[str], max_length: int) -> list[float]:
    return [
        min_k_score(s.logp)
        for s in token_stats(model, tok, [{"text": t} for t in texts], max_length=max_length)
    ]


def membership(model, tok, located: list[Located], twins: list[dict], max_length: int) -> dict | None:
    """min-k % of the located records (members) against their twins (never seen): the AUC and
    the ratio of their mean scores (located / twins; 1.0 = alike, below = still member-like)."""
    if not located:
        return None
    members = _min_k(model, tok, [r.text for r in located], max_length)
    unseen = _min_k(model, tok, [t["text"] for t in twins], max_length)
    ratio = (sum(members) / len(members)) / max(1e-9, sum(unseen) / len(unseen))
    return {"auc": mia_auc(members, unseen), "ratio": ratio}


def ppl(model, tok, texts: list[str], max_length: int) -> float | None:
    if not texts:
        return None
    return perplexity(
        [s.logp for s in token_stats(model, tok, [{"text": t} for t in texts], max_length=max_length)]
    )


@torch.no_grad()
def measure(model, tok, plan: dict, max_length: int, samples: int, seed: int) -> dict:
    """Every raw figure of a verification ``plan`` (see :func:`verification_plan`) on ``model``."""
    from genforget.requests.probes import family_rates

    model.eval()
    out: dict = {"requests": []}
    for rp in plan["requests"]:
        hits = extraction_hits(model, tok, rp["probes"])
        adv = rp.get("adversarial", [])
        out["requests"].append(
            {
                "adversarial": family_rates(adv, extraction_hits(model, tok, adv)),
                "greedy": sum(hits) / len(hits) if hits else None,
                "greedy_by_type": by_type(rp["probes"], hits),
                "sampled": extraction_rate(model, tok, rp["probes"], samples, seed) if samples else None,
                "membership": membership(model, tok, rp["located"], rp["twins"], max_length),
                "collateral": extraction_rate(model, tok, rp["neighbour_probes"]),
                "collateral_ppl": ppl(model, tok, rp["neighbours"], max_length),
            }
        )
    out["retain"] = extraction_rate(model, tok, plan["retain_probes"])
    out["retain_ppl"] = ppl(model, tok, plan["retain_texts"], max_length)
    return out


def verification_plan(
    res: LocateResult,
    twins_by_rid: dict[str, dict],
    retain_texts: list[str],
    seed: int = 0,
    tokenizer=None,
    adversarial: bool = True,
) -> dict:
    """The probes and texts measured before and after (built once, so both use the same);
    ``adversarial``: the probe families of :mod:`genforget.requests.probes` too (``tokenizer``
    places the partial-identifier cuts)."""
    from genforget.requests.probes import request_adversarial

    reqs = []
    for ri in range(len(res.requests)):
        located = res.for_request(ri)
        terms = [
            re.escape(n.replace(",", " ").split()[-1])
            for n in res.requests[ri].identifiers.get("name", [])
            if len(n.replace(",", " ").split()) > 1
        ]
        neigh = [
            t for _, t in res.neighbours if terms and re.search(rf"(?<!\w)(?:{'|'.join(terms)})(?!\w)", t)
        ]
        reqs.append(
            {
                "probes": request_probes(res, ri, seed=seed),
                "located": located,
                "twins": [twins_by_rid[r.rid] for r in located],
                "neighbours": neigh,
                "neighbour_probes": generic_probes(neigh, 64, seed),
                "adversarial": request_adversarial(res, ri, tokenizer, seed=seed) if adversarial else [],
            }
        )
    return {
        "requests": reqs,
        "retain_texts": retain_texts,
        "retain_probes": generic_probes(retain_texts, 128, seed),
    }


def _row(name: str, before, after, bar: str, passed: bool, n: int) -> dict:
    """One row of the certificate's table."""
    return {"name": name, "before": before, "after": after, "bar": bar, "passed": passed, "n": n}


def _most(name: str, before, after, bar: float, n: int) -> dict:
    """A row passing when ``after <= bar``."""
    return _row(name, before, after, f"after <= {bar:.2f}", after <= bar, n)


def _least(name: str, before, after, bar: float, n: int) -> dict:
    """A row passing when ``after >= bar``."""
    return _row(name, before, after, f"after >= {bar:.2f}", after >= bar, n)


def _ratio(name: str, before, after, bar: float, n: int, at_least: bool) -> dict:
    """A row comparing ``after`` with ``bar x before`` (kept capability, bounded perplexity)."""
    ok = after >= bar * before if at_least else after <= bar * before
    return _row(name, before, after, f"after {'>=' if at_least else '<='} {bar:.2f} x before", ok, n)


def figures(plan: dict, before: dict, after: dict, ri: int, samples: int, bars: dict) -> list[dict]:
    """Before/after rows with their bars for request ``ri`` (the certificate's table)."""
    rp, b, a = plan["requests"][ri], before["requests"][ri], after["requests"][ri]
    probes, ex = rp["probes"], bars["extraction"]
    rows = []
    if a["greedy"] is not None:
        rows.append(_most("forget extraction, greedy", b["greedy"], a["greedy"], ex, len(probes)))
        for t, rate in a["greedy_by_type"].items():
            n = sum(p["field"] == t for p in probes)
            rows.append(_most(f"forget extraction, greedy: {t}", b["greedy_by_type"][t], rate, ex, n))
    if a.get("adversarial"):
        from genforget.requests.probes import family_targets

        n_by = family_targets(rp["adversarial"])
        for fam, rate in a["adversarial"].items():
            name = f"forget extraction, adversarial: {fam}"
            rows.append(_most(name, b["adversarial"].get(fam), rate, ex, n_by[fam]))
    if a["sampled"] is not None:
        name = f"forget extraction, any of {samples} samples"
        rows.append(_most(name, b["sampled"], a["sampled"], bars["sampled"], len(probes)))
    if a["membership"] is not None:
        bm, am, n = b["membership"], a["membership"], len(rp["located"])
        rows.append(
            _least("membership: min-k located / twins", bm["ratio"], am["ratio"], bars["member_ratio"], n)
        )
        if n >= MIN_AUC_RECORDS:  # an AUC over fewer pairs is a coin flip, not evidence
            rows.append(_most("membership: min-k AUC located vs twins", bm["auc"], am["auc"], bars["auc"], n))
    kept, ppl_bar = bars["kept"], bars["ppl"]
    if after["retain"] is not None:
        name, n = "retain extraction (others' identifiers)", len(plan["retain_probes"])
        rows.append(_ratio(name, before["retain"], after["retain"], kept, n, at_least=True))
    if after["retain_ppl"] is not None:
        n = len(plan["retain_texts"])
        rows.append(
            _ratio("retain perplexity", before["retain_ppl"], after["retain_ppl"], ppl_bar, n, at_least=False)
        )
    if a["collateral"] is not None:
        name, n = "collateral extraction (neighbours' identifiers)", len(rp["neighbour_probes"])
        rows.append(_ratio(name, b["collateral"], a["collateral"], kept, n, at_least=True))
    elif a["collateral_ppl"] is not None:
        name, n = "collateral perplexity (neighbours' records)", len(rp["neighbours"])
        rows.append(_ratio(name, b["collateral_ppl"], a["collateral_ppl"], ppl_bar, n, at_least=False))
    for r in rows:
        r["passed"] = bool(r["passed"])
    return rows
