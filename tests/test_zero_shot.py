"""Requests without the training data (issue 22): ``genforget forget`` with no ``--data`` builds
the forget set from the model's own texts about the person (RWKU's zero-shot setting)."""

from __future__ import annotations

import json

import pytest
import yaml

from genforget.requests.zeroshot import subject_prompts


def test_subject_prompts_come_from_the_identifiers() -> None:
    ps = subject_prompts({"name": ["Jane Roe"], "phone": ["555-010-0199"]})
    assert ps[:4] == ["Jane Roe", "Jane Roe's", "Jane Roe is", "About Jane Roe:"]
    assert "The phone number of Jane Roe is" in ps and not any("555" in p for p in ps)
    assert subject_prompts({"email": ["a@b.org"]}) == ["a@b.org"]  # no name: the values themselves


@pytest.fixture(scope="module")
def zero_shot(corpus, victim_dir, tmp_path_factory, one_thread):
    from genforget.cli.main import main

    root = tmp_path_factory.mktemp("zeroshot")
    p = corpus.persons("forget")[0]
    ids = {
        "name": [p.name],
        "email": [p.pii["email"]],
        "phone": [p.pii["phone"]],
        "id_number": [p.pii["id_number"]],
    }
    (root / "req.yaml").write_text(yaml.safe_dump({"id": "REQ-Z", "kind": "person", "identifiers": ids}))
    out = root / "out"
    argv = ["forget", "--model", str(victim_dir), "--request", str(root / "req.yaml"), "--output_dir", str(out),
            "--zero_shot_samples", "2", "--samples", "0", "--relearn_speed", "false", "--retain_eval", "32"]  # fmt: skip
    rc = main(argv)
    return rc, json.loads((out / "certificate.json").read_text()), (out / "certificate.md").read_text()


def test_a_request_without_data_forgets_in_every_probe_family(zero_shot) -> None:
    rc, cert, md = zero_shot
    assert cert["data"]["records_scanned"] == 0 and cert["data"]["corpus_scanned"] is False
    zs = cert["data"]["zero_shot"]
    assert zs["forget_texts"] == cert["located"]["records"] > 0 and zs["generated"] > zs["forget_texts"]
    assert "no corpus scanned" in md
    rows = {r["name"]: r for r in cert["verification"]}
    greedy = rows["forget extraction, greedy"]
    assert greedy["before"] >= 0.5 and greedy["after"] <= 0.05
    for fam in ("partial", "hint"):  # the victim leaks under both before (measured 1.0 / 1.0)
        row = rows[f"forget extraction, adversarial: {fam}"]
        assert row["before"] >= 0.5 and row["after"] <= 0.05 and row["passed"], row
    assert rows["forget extraction, adversarial: rephrased"]["after"] <= 0.05
    assert cert["model"]["before_sha256"] != cert["model"]["after_sha256"]
    # The retained-capability rows are computed and shown whatever they say (never hidden).
    assert "retain extraction (others' identifiers)" in rows
    assert cert["passed"] == all(r["passed"] for r in cert["verification"] if r.get("gating", True))
    assert rc == (0 if cert["passed"] else 1)


def test_zero_shot_certificate_says_relearn_was_not_measured(zero_shot) -> None:
    _, cert, md = zero_shot
    assert cert["evidence"] == "forgotten, relearn not measured"  # --relearn_speed false
    assert "evidence: **forgotten, relearn not measured**" in md


def _rows(extraction: bool, member: bool, relearn: bool | None) -> list[dict]:
    rows = [
        {"name": "forget extraction, greedy", "passed": extraction},
        {"name": "forget extraction, adversarial: hint", "passed": True},
        {"name": "membership: min-k located / twins", "passed": member},
        {"name": "retain extraction (others' identifiers)", "passed": False},  # not evidence of removal
    ]
    if relearn is not None:
        rows.append({"name": "relearn speed: largest extraction gap to twins, 0-40 steps", "passed": relearn})
    return rows


def test_removal_evidence_tells_removed_from_suppressed() -> None:
    from genforget.requests.certificate import removal_evidence

    measured = {"measured": True}
    assert removal_evidence(_rows(True, True, True), measured) == "removed"
    assert removal_evidence(_rows(True, True, False), measured) == "suppressed"
    assert removal_evidence(_rows(False, True, True), measured) == "not forgotten"
    assert removal_evidence(_rows(True, False, False), measured) == "not forgotten"
    assert removal_evidence(_rows(True, True, None), {"measured": False}) == "forgotten, relearn not measured"
    assert removal_evidence([], None) == "nothing located"
