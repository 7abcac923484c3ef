"""Relearn speed of a deletion request: twin probes, the two curves and their gap, validation.
(The section in a real certificate, and its privacy, are checked in test_requests_forget.py.)"""

from __future__ import annotations

import json
import random

import pytest
import yaml

from genforget.cli.main import main
from genforget.evaluation.audits.relearn_speed import BUDGETS, curve_gap
from genforget.evaluation.suite import Suite
from genforget.requests import locate, make_twins, parse_request
from genforget.requests.certificate import relearn_markdown
from genforget.requests.pipeline import ForgetArgs, windows
from genforget.requests.relearn import (
    BATCH_SIZE,
    LEARNING_RATE,
    check_budgets,
    consistent_twins,
    greedy_rate,
    relearn_row,
    relearn_speed,
    twin_probes,
)
from genforget.requests.verify import request_probes


@pytest.fixture(scope="module")
def located(corpus, tmp_path_factory):
    """One forget person in two records the victim memorised: their bio, and again with the
    sentences in another order (the victim trains on shuffled bios)."""
    p = corpus.persons("forget")[0]
    data = tmp_path_factory.mktemp("relearn") / "train.jsonl"
    texts = [q.bio()["text"] for q in corpus.persons("forget") + corpus.persons("retain")]
    texts.append(p.bio(random.Random(1))["text"])
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    ids = {"name": [p.name], "email": [p.pii["email"]], "phone": [p.pii["phone"]]}
    res = locate([parse_request({"id": "R", "identifiers": ids})], data)
    return res, [v for vs in ids.values() for v in vs]


def test_defaults_are_the_harness_suite_defaults():
    s = Suite()
    assert (LEARNING_RATE, BATCH_SIZE) == (s.relearn_learning_rate, s.relearn_batch_size)
    assert ForgetArgs().relearn_budgets == list(BUDGETS) == list(s.relearn_budgets)


def test_twin_probes_mirror_the_request_probes(located):
    res, values = located
    records = res.for_request(0)
    assert len(records) == 2
    twins = consistent_twins(res, records)
    probes, tprobes = request_probes(res, 0), twin_probes(res, 0, twins)
    assert len(probes) == len(tprobes) >= 3
    assert [p["field"] for p in probes] == [p["field"] for p in tprobes]
    for p, t in zip(probes, tprobes, strict=True):
        assert t["target"] != p["target"] and t["matcher"].search(t["target"])
        assert not t["matcher"].search(p["target"])  # the real value is not the fake one
        assert not any(v.lower() in (t["prompt"] + t["target"]).lower() for v in values)
    # One fake person across both records (a per-record fake would be two people, slower to learn).
    email = [t["target"] for t in tprobes if t["field"] == "email"]
    assert len(email) == 2 and email[0] == email[1]
    fresh = make_twins(res, records=records)
    emails = [t["text"][a:b] for t in fresh for a, b in t["spans"] if "@" in t["text"][a:b]]
    assert len(set(emails)) == 2  # make_twins draws afresh per record


def test_curves_of_a_model_that_knows_the_records(located, victim):
    res, _ = located
    model, tok = victim
    sp = relearn_speed(model, tok, res, 0, windows, budgets=(0, 4))
    assert sp["measured"] and sp["budgets"] == [0, 4]
    # The victim memorised the records and never saw the twins.
    assert sp["curves"]["located"][0] == 1.0 == greedy_rate(model, tok, request_probes(res, 0))
    assert sp["curves"]["twins"][0] == 0.0
    gap = curve_gap(sp["curves"]["located"], sp["curves"]["twins"], [0, 4])
    assert {k: sp[k] for k in gap} == gap
    assert sp["examples"] == {"located": 2, "twins": 2}
    assert sp["probes"]["located"] == sp["probes"]["twins"] >= 3


def test_no_learning_gives_flat_curves_and_a_hand_computed_gap(located, victim):
    res, _ = located
    model, tok = victim
    sp = relearn_speed(model, tok, res, 0, windows, budgets=(0, 1, 3), learning_rate=0.0)
    assert sp["curves"] == {"located": [1.0, 1.0, 1.0], "twins": [0.0, 0.0, 0.0]}
    assert (sp["area"], sp["max_gap"], sp["max_gap_at"]) == (1.0, 1.0, 0.0)


@pytest.mark.parametrize("budgets", [[5, 10], [0], [0, 10, 5], [0, 5, 5]])
def test_bad_budgets(budgets):
    with pytest.raises(ValueError, match="starting at 0"):
        check_budgets(budgets)


@pytest.mark.parametrize("flag", [["5", "10"], ["0", "x"]])
def test_bad_budgets_on_the_command_line_exit_2_and_write_nothing(tmp_path, capsys, flag):
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump({"id": "R", "identifiers": {"email": ["a.b@example.org"]}}))
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n')
    rc = main(["forget", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d.jsonl"),
               "--request", str(req), "--output_dir", str(tmp_path / "out"), "--relearn_budgets", *flag])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --relearn_budgets")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "req.yaml"]


def test_row_is_shown_but_gates_only_when_asked():
    sp = {"budgets": [0, 5, 40], "max_gap": 0.3, "probes": {"located": 7}}
    row = relearn_row(sp, 0.10, gating=False)
    assert row["name"] == "relearn speed: largest extraction gap to twins, 0-40 steps"
    assert row["after"] == 0.3 and row["n"] == 7 and row["passed"] is False and row["gating"] is False
    assert row["bar"] == "after <= 0.10 (shown, not gating)"
    assert relearn_row(sp, 0.5, gating=True) | {"bar": ""} == row | {
        "passed": True,
        "gating": True,
        "bar": "",
    }


def test_markdown_section_and_a_non_gating_row():
    sp = {
        "measured": True,
        "budgets": [0, 5],
        "learning_rate": 1e-3,
        "batch_size": 8,
        "curves": {"located": [0.0, 0.75], "twins": [0.0, 0.25]},
        "area": 0.25,
        "max_gap": 0.5,
        "max_gap_at": 5.0,
    }
    md = "\n".join(relearn_markdown(sp))
    assert "| k steps | 0 | 5 |" in md and "| located records | 0.00 | 0.75 |" in md
    assert "| twins (never seen) | 0.00 | 0.25 |" in md and "largest gap 0.50 at 5 steps" in md
    from genforget.requests.certificate import certificate_markdown

    row = relearn_row(sp | {"probes": {"located": 3}}, 0.10, gating=False)
    cert = {
        "passed": True,
        "request": {"ref_hmac": "h", "kind": "person", "identifier_types": {"email": 1}},
        "model": {"before_sha256": "a", "after_sha256": "b"},
        "status": "unlearned",
        "data": {"records_scanned": 9},
        "located": {"records": 2, "occurrences": {"email": 2}},
        "method": {"name": "npo"},
        "genforget_version": "0",
        "key_id": "k",
        "times": {"started_utc": "s", "finished_utc": "f"},
        "verification": [row],
        "relearn_speed": sp,
    }
    page = certificate_markdown(cert)
    assert page.startswith("# Deletion certificate — PASSED") and "## Relearn speed" in page
    assert "| – | 0.500 | after <= 0.10 (shown, not gating) | 3 | over bar |" in page
    assert relearn_markdown({"measured": False, "reason": "no records located"}) == [
        "Relearn speed: not measured (no records located).",
        "",
    ]


def test_work_requests_get_verbatim_twin_probes(tmp_path, victim):
    work = " ".join(f"w{i}" for i in range(30))
    (tmp_path / "work.txt").write_text(work)
    copied = [f"Intro. {work}. Outro.", f"Another copy: {' '.join(work.split()[:24])}."]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in copied))
    req = parse_request({"id": "W", "kind": "work", "documents": ["work.txt"]}, base_dir=tmp_path)
    res = locate([req], tmp_path / "d.jsonl")
    twins = consistent_twins(res, res.for_request(0))
    probes, tprobes = request_probes(res, 0), twin_probes(res, 0, twins)
    assert len(probes) == len(tprobes) == 2
    for p, t in zip(probes, tprobes, strict=True):
        assert t["matcher"] is None and t["field"] == "work"  # verbatim, like the request's
        assert len(t["target"].split()) == len(p["target"].split()) == 8
        assert not set(t["target"].split()) & set(work.split())
    model, tok = victim
    sp = relearn_speed(model, tok, res, 0, windows, budgets=(0, 1), learning_rate=0.0)
    assert sp["curves"] == {"located": [0.0, 0.0], "twins": [0.0, 0.0]}  # never trained on either


def test_command_line_options_parse():
    from genforget.cli.args import parse_config
    from genforget.requests.options import RequestUnlearnConfig

    argv = ["--relearn_speed", "false", "--relearn_budgets", "0", "3", "--relearn_gate", "true"]
    args, _ = parse_config((ForgetArgs, RequestUnlearnConfig), argv)
    assert (args.relearn_speed, args.relearn_gate, args.relearn_bar) == (False, True, 0.10)
    assert [int(b) for b in args.relearn_budgets] == [0, 3]  # strings from the command line
