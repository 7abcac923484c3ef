"""Requests without the training data: the forget set built from the model itself.

RWKU's zero-shot setting (Jin et al. 2024, "RWKU: Benchmarking Real-World Knowledge Unlearning
for Large Language Models", arXiv:2406.10890): the controller has a target and the model, not the
corpus. Prompts are made from the request's identifiers and generic templates (the name alone,
"<name>'s", the questions of :data:`~genforget.evaluation.metrics.adversarial.REPHRASE`); the
model's greedy and sampled continuations whose *generated part* holds one of the request's
identifiers are the forget records (what the model would say about the person). The retain set is
the model's own continuations of the same prompts about twin identities (fresh fake names, never
trained on): what it knows of other people and how it writes, without the target.

The generated texts are then located like any training data (the same matcher, spans and twins),
so verification, the relearn audit and the certificate work unchanged; the certificate records
that no corpus was scanned (``records_scanned`` 0) and how many texts were generated.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from faker import Faker

from genforget.evaluation.metrics.adversarial import LABELS, REPHRASE
from genforget.requests.locate import LocateResult, locate
from genforget.requests.match import Identifier, Matcher
from genforget.requests.request import Request
from genforget.requests.twins import TWIN_SEED_SALT

NAME_PROMPTS = ("{name}", "{name}'s", "{name} is", "About {name}:")
SAMPLES, MAX_NEW_TOKENS, RETAIN_NAMES = 8, 64, 32


def subject_prompts(identifiers: dict[str, list[str]]) -> list[str]:
    """Prompts about one subject: the name forms and templates per identifier type (without a
    name: each identifier value on its own)."""
    names = identifiers.get("name", [])
    if not names:
        return [v for t, vals in identifiers.items() for v in vals]
    types = [t for t in identifiers if t != "name"] or ["email", "phone"]
    out = [p.format(name=n) for n in names for p in NAME_PROMPTS]
    out += [t.format(name=names[0], label=LABELS.get(ty, ty)) for ty in types for t in REPHRASE]
    return list(dict.fromkeys(out))


def _continuations(model, tok, prompts: list[str], samples: int, seed: int) -> list[tuple[str, str]]:
    from genforget.evaluation.metrics.extraction import generate

    greedy = generate(model, tok, prompts, MAX_NEW_TOKENS)
    sampled = generate(model, tok, prompts, MAX_NEW_TOKENS, num_samples=samples, seed=seed) if samples else []
    out = list(zip(prompts, greedy, strict=True))
    out += [(p, g) for p, gs in zip(prompts, sampled, strict=False) for g in gs]
    return list(dict.fromkeys((p, g) for p, g in out if g.strip()))


def _join(prompt: str, gen: str) -> str:
    return prompt + gen if gen[:1].isspace() or prompt.endswith((" ", "\n")) else f"{prompt}{gen}"


def locate_from_model(
    requests: list[Request], model, tok, retain_size: int = 256, seed: int = 0, samples: int = SAMPLES
) -> LocateResult:
    """A :class:`LocateResult` whose records are ``model``'s own texts (see the module
    docstring); ``res.n_records`` is 0 (no corpus) and ``res.extra["zero_shot"]`` counts them."""
    t0 = time.perf_counter()
    model.eval()
    forget: list[str] = []
    for ri, r in enumerate(requests):
        idents = [Identifier(ri, t, k, v) for t, vals in r.identifiers.items() for k, v in enumerate(vals)]
        matcher = Matcher(idents, {ri: r.region})
        for p, g in _continuations(model, tok, subject_prompts(r.identifiers), samples, seed + ri):
            if matcher.search(g):  # the model itself says something identifying about the person
                forget.append(_join(p, g))
    fake = Faker("en_US")
    fake.seed_instance(seed + TWIN_SEED_SALT)
    shape = {t: vals for r in requests for t, vals in r.identifiers.items() if t != "name"}
    twins = [{"name": [fake.name()], **{t: ["x"] for t in shape}} for _ in range(RETAIN_NAMES)]
    retain_prompts = [p for tw in twins for p in subject_prompts(tw)[: len(NAME_PROMPTS) + 2]]
    retain = [_join(p, g) for p, g in _continuations(model, tok, retain_prompts, 1, seed)]
    with tempfile.TemporaryDirectory() as d:  # the generated texts, located as training data
        path = Path(d) / "generated.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in dict.fromkeys(forget + retain)))
        res = locate(requests, path, retain_size=retain_size, seed=seed)
    n_generated = res.n_records
    res.n_records = 0
    res.seconds = time.perf_counter() - t0
    res.extra = {
        "zero_shot": {
            "generated": n_generated,
            "forget_texts": len(res.located),
            "retain_texts": len(res.retain),
        },
        "executor": "model (zero-shot)",
    }
    for rec in res.located:  # a record id says where it came from (no file is kept)
        rec.rid = "generated:" + rec.rid.rsplit(":", 1)[-1]
    return res
