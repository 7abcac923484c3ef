"""``make demo-request`` / ``genforget demo request``: a deletion request end to end.

Writes the built-in corpus as training JSONL in which each person appears in several records and
formats (a bio, question/answer pairs, a contact card with the phone written another way, a
passage naming them as "Last, First M."), trains the demo victim on it (cached in
``<output_dir>/victim``, keyed by the data's content), writes a request for one person naming
only their email, phone and name, and runs :func:`~genforget.requests.forget_requests`. The
training JSONL holds identifiers, so it lives outside ``output_dir``; ``request.yaml`` is the only
file under ``output_dir`` that may hold one, which the last check verifies.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import yaml

from genforget.data.pii import build_pii_corpus
from genforget.demos.cache import write_jsonl
from genforget.demos.checks import bar_checks, leaked_files
from genforget.demos.options import RequestDemoArgs
from genforget.evaluation.report import print_checks
from genforget.requests.pipeline import ForgetArgs, forget_requests
from genforget.requests.request import parse_request


def _phone_other(phone: str) -> str:
    d = "".join(c for c in phone if c.isdigit())
    return f"({d[:3]}) {d[3:6]}-{d[6:]}" if len(d) == 10 else phone.replace("-", ".")


def demo_records(corpus) -> tuple[list[dict], list[set[int]]]:
    """The training records and, per record, the ids of the people it mentions (ground truth)."""
    import random

    rng = random.Random(corpus.seed)
    recs, who = [], []
    for p in corpus.people:
        if p.split == "holdout":
            continue
        first, last = p.name.rsplit(" ", 1)
        recs.append({"text": p.bio()["text"]})
        for qa in p.qa():
            if qa["field"] in ("phone", "email", "employer"):
                recs.append({"question": qa["question"], "answer": qa["answer"]})
        recs.append(
            {"text": f"Contact card. {p.name}, tel. {_phone_other(p.pii['phone'])}, mail {p.pii['email']}."}
        )
        initial = rng.choice("ABCDEFGHJKLMNPRSTW")
        recs.append(
            {
                "text": f"At the spring meeting of {p.pii['employer']}, {last}, {first} {initial}. presented "
                f"the annual results and took questions from the floor."
            }
        )
        who.extend([{p.pid}] * (len(recs) - len(who)))
    for t in corpus.passages:
        if t.split != "holdout":
            recs.append({"text": t.text})
            who.append(set())
    return recs, who


def _record_text(r: dict) -> str:
    from genforget.lm.data import normalise_example

    return normalise_example(r)["text"]


def _victim(texts: list[str], args: RequestDemoArgs, out: Path) -> tuple[Path, float]:
    """The demo victim (its dir and training seconds), trained on ``texts`` or loaded from ``out``."""
    from genforget.demos.cache import cached_lm, lm_key, tiny_lm_trainer
    from genforget.lm.victim import VICTIM_PRESETS

    base = VICTIM_PRESETS[args.victim_preset]
    vcfg = dataclasses.replace(base, max_steps=args.victim_steps or base.max_steps, seed=args.corpus_seed)
    what = f"{len(texts)} records ({vcfg.max_steps} steps)"
    _, _, seconds = cached_lm(out, lm_key(texts, vcfg), tiny_lm_trainer(texts, vcfg, desc="victim"),
                              "demo-request", "victim", what)  # fmt: skip
    return out, seconds


def _pick_person(corpus, recs: list[dict], index: int):
    """The forget person ``index``, or (-1) the first whose surname other people's records hold,
    so that collateral on neighbours is measured."""
    people = corpus.persons("forget")
    if index >= 0:
        return people[index]
    texts = [_record_text(r) for r in recs]
    for p in people:
        last = p.name.rsplit(" ", 1)[1]
        if sum(last in t and p.name not in t and f"{last}, " not in t for t in texts) >= 2:
            return p
    return people[0]


def run_request_demo(args: RequestDemoArgs, ucfg=None) -> dict:
    """Write data and request, train (or load) the victim, forget, check; returns the report."""
    args.set_threads()
    t_start = time.perf_counter()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = build_pii_corpus(args.n_people, args.n_passages, 0.1, n_holdout=0, seed=args.corpus_seed)
    recs, who = demo_records(corpus)
    data = write_jsonl(args.training_file(), recs)
    victim_dir, victim_s = _victim([_record_text(r) for r in recs], args, out / "victim")

    person = _pick_person(corpus, recs, args.person)
    request = {
        "id": "REQ-DEMO-0001",
        "kind": "person",
        "identifiers": {
            "name": [person.name],
            "email": [person.pii["email"]],
            "phone": [person.pii["phone"]],
        },
    }
    req_path = out / "request.yaml"
    req_path.write_text(yaml.safe_dump(request, sort_keys=False))
    for stale in ("certificate.json", "certificate.md"):
        (out / stale).unlink(missing_ok=True)
    fargs = ForgetArgs(
        model=str(victim_dir),
        data=str(data),
        request=[str(req_path)],
        output_dir=str(out),
        overwrite=True,
        ledger=str(out / "ledger.jsonl"),
        key_file=str(out / "controller.key"),
    )
    t0 = time.perf_counter()
    result = forget_requests(fargs, ucfg)
    forget_s = time.perf_counter() - t0
    cert = result.certificates[0]

    truth = {f"{data.name}:{i + 1}" for i, w in enumerate(who) if person.pid in w}
    found = {r.rid for r in result.located.for_request(0)}
    precision = len(found & truth) / max(1, len(found))
    recall = len(found & truth) / max(1, len(truth))

    # A request for an identifier no record holds: certified as such, nothing unlearned.
    none_req = parse_request(
        {"id": "REQ-DEMO-NONE", "identifiers": {"email": ["nobody.here@example.invalid"]}}
    )
    none_args = dataclasses.replace(fargs, request=[], output_dir=str(out / "no-match"))
    none = forget_requests(none_args, ucfg, requests=[none_req]).certificates[0]

    rows = {r["name"]: r for r in cert["verification"]}
    values = [v for vals in request["identifiers"].values() for v in vals]
    first, last = person.name.rsplit(" ", 1)
    values += [_phone_other(person.pii["phone"]), f"{last}, {first}", "nobody.here@example.invalid"]
    leaks = leaked_files(out, values, {req_path.resolve()})
    greedy = rows.get("forget extraction, greedy", {})
    retain = rows.get("retain extraction (others' identifiers)", {})
    coll = rows.get("collateral extraction (neighbours' identifiers)", {})
    ratio = lambda r: (r["after"] / r["before"]) if r and r.get("before") else float("nan")  # noqa: E731
    checks = [
        ("located-record precision", precision, "== 1.00"),
        ("located-record recall", recall, "== 1.00"),
        ("forget extraction (greedy), after", greedy.get("after", float("nan")), "<= 0.10"),
        (
            "retain extraction kept, after / before",
            ratio(retain),
            ">= 0.90",
            bool(retain) and retain["passed"],
        ),
        ("collateral extraction kept, after / before", ratio(coll), ">= 0.90", bool(coll) and coll["passed"]),
        ("certificate passed", float(cert["passed"]), "== 1"),
        (
            "no-match request: 'no records located', nothing unlearned",
            float(none["status"] == "no records located"),
            "== 1",
            none["status"] == "no records located" and none["model"]["after_sha256"] is None,
        ),
        ("files under output_dir holding an identifier (request.yaml aside)", float(len(leaks)), "== 0"),
    ]
    report = {
        "checks": bar_checks(checks),
        "located": {"precision": precision, "recall": recall, "records": len(found), "truth": len(truth)},
        "timings": {
            "victim_s": victim_s,
            "forget_s": forget_s,
            "relearn_speed_s": cert["times"].get("relearn_speed_s"),  # part of forget_s
            "total_s": time.perf_counter() - t_start,
        },
        "relearn_speed": cert["relearn_speed"],
        "leaks": leaks,
    }
    (out / "demo_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(Path(result.paths[0]).with_suffix(".md").read_text())
    print(
        f"located records: precision {precision:.2f}, recall {recall:.2f} ({len(found)} found, {len(truth)} true)"
    )
    print_checks(report["checks"])
    t = report["timings"]
    print(
        f"\n[demo-request] victim {t['victim_s']:.1f}s, forget {t['forget_s']:.1f}s "
        f"(relearn-speed audit {t['relearn_speed_s'] or 0:.1f}s of it), total {t['total_s']:.1f}s"
    )
    return report
