"""``genforget forget`` end to end on the tiny victim: certificate, ledger, privacy, recheck."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

import pytest
import yaml

from genforget.cli.main import main
from genforget.requests import load_requests, locate, read_ledger, verify_ledger


def _run_captured(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` with file descriptors 1 and 2 captured (everything any layer prints)."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        # Python-level streams too: pytest replaces sys.stdout/err with objects of its own.
        stream = open(f.fileno(), "w", closefd=False, buffering=1)  # noqa: SIM115
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                rc = main(argv)
            stream.flush()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        f.seek(0)
        return rc, f.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def run(corpus, victim_dir, tmp_path_factory, one_thread):
    """Two requests (two forget people) handled in one `genforget forget` pass."""
    root = tmp_path_factory.mktemp("forget")
    data = root / "train.jsonl"
    trained = corpus.persons("forget") + corpus.persons("retain")
    data.write_text("".join(json.dumps({"text": p.bio()["text"]}) + "\n" for p in trained))
    reqdir = root / "requests"
    reqdir.mkdir()
    people = corpus.persons("forget")[:2]
    for i, p in enumerate(people):
        ids = {"name": [p.name], "email": [p.pii["email"]], "phone": [p.pii["phone"]]}
        if i == 0:
            ids["id_number"] = [p.pii["id_number"]]
        (reqdir / f"req{i}.yaml").write_text(
            yaml.safe_dump({"id": f"REQ-{i}", "kind": "person", "identifiers": ids})
        )
    out = root / "out"
    argv = ["forget", "--model", str(victim_dir), "--data", str(data), "--request",
            str(reqdir / "req0.yaml"), str(reqdir / "req1.yaml"), "--output_dir", str(out),
            # One bio against one twin is a noisy pair: measured 0.80 and 1.02 here (bar 0.75 by
            # default); the test asserts the move from member-like instead (below).
            "--member_ratio_bar", "0.6"]  # fmt: skip
    rc, log = _run_captured(argv)
    return {"root": root, "data": data, "reqdir": reqdir, "out": out, "rc": rc, "log": log, "people": people}


def test_forget_writes_certificates_and_ledger(run):
    assert run["rc"] == 0, run["log"][-2000:]
    out = run["out"]
    assert (out / "model" / "config.json").is_file()
    certs = [json.loads((out / f"certificate-{i}.json").read_text()) for i in (1, 2)]
    res = locate(load_requests(sorted(run["reqdir"].glob("*.yaml"))), run["data"])
    for i, c in enumerate(certs):
        assert c["status"] == "unlearned" and c["passed"] is True
        assert c["located"]["records"] == 1 == len(c["located"]["record_ids_hmac"])  # one bio each
        assert c["located"]["occurrences"] == res.counts(i)["occurrences"]
        assert c["located"]["occurrences"]["name"] == 6  # every bio sentence starts with the name
        assert c["model"]["before_sha256"] != c["model"]["after_sha256"]
        rows = {r["name"]: r for r in c["verification"]}
        greedy = rows["forget extraction, greedy"]
        assert greedy["before"] >= 0.5 and greedy["after"] <= 0.1 and greedy["passed"]
        assert rows["retain extraction (others' identifiers)"]["passed"]
        member = rows["membership: min-k located / twins"]
        assert member["before"] < 0.2 and member["after"] >= 0.6 and member["bar"] == "after >= 0.60"
        assert (out / f"certificate-{i + 1}.md").read_text().startswith("# Deletion certificate — PASSED")
        # Relearn speed: shown with its bar, not gating by default; at 0 steps the curve is the
        # unlearned model's greedy extraction, measured on the same probes as the row above.
        sp = c["relearn_speed"]
        assert sp["measured"] and sp["budgets"] == [0, 5, 10, 20, 40] and len(sp["curves"]["twins"]) == 5
        assert sp["curves"]["located"][0] == greedy["after"] and sp["curves"]["twins"][0] == 0.0
        speed = rows["relearn speed: largest extraction gap to twins, 0-40 steps"]
        assert speed["after"] == sp["max_gap"] and speed["gating"] is False
    # The model card names each certificate by its request's HMAC and its file's SHA-256, no values.
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.library_name == "transformers" and "genforget" in card.data.tags
    text = (out / "model" / "README.md").read_text()
    for i, c in enumerate(certs):
        sha = hashlib.sha256((out / f"certificate-{i + 1}.json").read_bytes()).hexdigest()
        assert c["request"]["ref_hmac"] in text and sha in text
    for p in run["people"]:
        assert p.name not in text and not any(v in text for v in p.pii.values())
        assert "## Relearn speed" in (out / f"certificate-{i + 1}.md").read_text()
    assert certs[0]["request"]["identifier_types"] == {"name": 1, "email": 1, "phone": 1, "id_number": 1}
    assert certs[0]["request"]["ref_hmac"] != certs[1]["request"]["ref_hmac"]
    ledger = run["root"] / "ledger.jsonl"  # default: OUT/../ledger.jsonl
    assert verify_ledger(ledger)[0]

    entries = read_ledger(ledger)
    assert [e["certificate_sha256"] for e in entries] == [
        hashlib.sha256((out / f"certificate-{i}.json").read_bytes()).hexdigest() for i in (1, 2)
    ]
    assert (run["root"] / "controller.key").is_file() and "warning: key file" in run["log"]


def test_sharded_data_with_two_workers_gives_the_same_certificate_counts(run, victim_dir, tmp_path):
    """``--data 'dir/*.parquet' --workers 2`` (datatrove, two local processes) locates and
    certifies the same counts as the single-process run over the JSONL."""
    pytest.importorskip("datatrove", reason="genforget[scale] is not installed")
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [json.loads(line)["text"] for line in run["data"].read_text().splitlines()]
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in range(2):
        pq.write_table(pa.table({"text": texts[k::2]}), shards / f"part-{k}.parquet")
    reqs = [str(run["reqdir"] / f"req{i}.yaml") for i in (0, 1)]
    rc, log = _run_captured(["forget", "--model", str(victim_dir), "--data", str(shards / "*.parquet"),
                             "--workers", "2", "--request", *reqs, "--output_dir", str(tmp_path / "out"),
                             "--member_ratio_bar", "0.6", "--relearn_speed", "false"])  # fmt: skip
    assert rc == 0, log[-2000:]
    assert "'executor': 'local', 'workers': 2, 'tasks': 2" in log
    for i in (1, 2):
        a = json.loads((run["out"] / f"certificate-{i}.json").read_text())
        b = json.loads((tmp_path / "out" / f"certificate-{i}.json").read_text())
        for key in ("records", "occurrences", "records_by_type"):
            assert b["located"][key] == a["located"][key], key
        assert b["data"]["records_scanned"] == a["data"]["records_scanned"] == len(texts)
        assert b["sets"] == a["sets"] and b["status"] == a["status"] == "unlearned"
        assert a["data"]["locate"] == {"executor": "in-process", "workers": 0, "shards": 1}
        assert b["data"]["locate"] == {"executor": "local", "workers": 2, "tasks": 2, "shards": 2}


def test_nothing_identifying_is_written_or_printed(run):
    """Every file under OUT, the ledger and the captured stdout/stderr are free of every
    identifier value and every located record's text."""
    reqs = load_requests(sorted(run["reqdir"].glob("*.yaml")))
    res = locate(reqs, run["data"])
    needles = [v for r in reqs for v in r.values()] + [r.text for r in res.located]
    needles += [p.pii["phone"].replace("-", "") for p in run["people"]]
    assert len(res.located) == 2 and len(needles) == 11
    files = [f for f in run["out"].rglob("*") if f.is_file()] + [run["root"] / "ledger.jsonl"]
    assert len(files) > 8
    for f in files:
        data = f.read_bytes().lower()
        for n in needles:
            assert n.lower().encode() not in data, f"{f.name} holds an identifier or record text"
    for n in needles:
        assert n.lower() not in run["log"].lower()
    assert "records located" in run["log"]  # the counts were printed


def test_no_match_request_is_certified_as_such(run, victim_dir, tmp_path):
    req = tmp_path / "none.yaml"
    req.write_text(yaml.safe_dump({"id": "REQ-NONE", "identifiers": {"email": ["nobody@example.invalid"]}}))
    rc, log = _run_captured(["forget", "--model", str(victim_dir), "--data", str(run["data"]), "--request",
                             str(req), "--output_dir", str(tmp_path / "out")])  # fmt: skip
    assert rc == 0 and "no records located" in log
    cert = json.loads((tmp_path / "out" / "certificate.json").read_text())
    assert cert["status"] == "no records located" and cert["located"]["records"] == 0
    assert cert["model"]["after_sha256"] is None and not (tmp_path / "out" / "model").exists()
    assert cert["passed"] is True and cert["verification"] == []
    assert cert["relearn_speed"] == {"measured": False, "reason": "no records located"}
    assert len(read_ledger(tmp_path / "ledger.jsonl")) == 1


def test_recheck_flags_exactly_the_relearned_request(run, victim_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState

    from genforget.lm.victim import VictimConfig, train_causal_lm
    from genforget.requests.recheck import RecheckCallback

    ledger, out = run["root"] / "ledger.jsonl", run["out"]
    base = ["recheck", "--ledger", str(ledger), "--requests", str(run["reqdir"]), "--data", str(run["data"])]
    rc, log = _run_captured([*base, "--model", str(out / "model")])
    assert rc == 0, log[-1500:]

    # A user's later fine-tune on data that re-introduces the first deleted person.
    model, tok = (
        AutoModelForCausalLM.from_pretrained(out / "model"),
        AutoTokenizer.from_pretrained(out / "model"),
    )
    person = run["people"][0]
    cfg = VictimConfig(max_steps=40, batch_size=8, learning_rate=3e-3, warmup_steps=2)
    train_causal_lm(model, tok, lambda rng: [person.bio(rng)["text"]] * 4, cfg)
    model.save_pretrained(tmp_path / "relearned")
    tok.save_pretrained(tmp_path / "relearned")
    rc, log = _run_captured([*base, "--model", str(tmp_path / "relearned")])
    assert rc == 1
    assert "req0.yaml: extraction" in log and "extractable again: req0.yaml\n" in log
    assert "req1.yaml" in log and "req1.yaml" not in log.split("extractable again:")[1]

    cb = RecheckCallback(ledger, run["reqdir"], run["data"], tokenizer=tok, action="stop")
    control = cb.on_save(None, TrainerState(global_step=7), TrainerControl(), model=model)
    assert control.should_training_stop
    assert [r["flagged"] for r in cb.history[-1]] == [True, False]

    # A request the ledger does not hold is refused.
    stranger = tmp_path / "reqs"
    stranger.mkdir()
    (stranger / "x.yaml").write_text(yaml.safe_dump({"id": "REQ-X", "identifiers": {"name": [person.name]}}))
    rc, log = _run_captured(
        [*base[:3], "--requests", str(stranger), "--data", str(run["data"]), "--model", str(out / "model")]
    )
    assert rc == 2 and "x.yaml: this request is not in the ledger" in log


def test_certificate_and_last_line_say_removed_or_suppressed(run):
    out = run["out"]
    for i in (1, 2):
        c = json.loads((out / f"certificate-{i}.json").read_text())
        relearn = next(r for r in c["verification"] if r["name"].startswith("relearn speed"))
        # Computed whatever --relearn_gate says (off here): removed iff the relearn row passes.
        assert c["evidence"] == ("removed" if relearn["passed"] else "suppressed")
        assert f"request {i}: unlearned, evidence: {c['evidence']}, passed=" in run["log"]
        fams = {r["name"] for r in c["verification"] if "adversarial" in r["name"]}
        assert fams == {f"forget extraction, adversarial: {f}" for f in ("rephrased", "partial", "hint")}
        partial = next(r for r in c["verification"] if r["name"].endswith("adversarial: partial"))
        assert partial["before"] >= 0.5 and partial["after"] <= 0.1 and partial["passed"]
