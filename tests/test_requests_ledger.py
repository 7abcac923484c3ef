"""The deletion ledger: an intact chain verifies; each kind of tampering is caught and named."""

from __future__ import annotations

import json

import pytest

from genforget.cli.main import main
from genforget.requests.ledger import GENESIS, append_entry, entry_hash, read_ledger, verify_ledger


def _cert(i: int) -> dict:
    return {"request": {"ref_hmac": f"{i:064x}"}, "passed": i % 2 == 0, "status": "unlearned"}


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "ledger.jsonl"
    for i in range(4):
        append_entry(path, _cert(i), f"{i + 100:064x}")
    return path


def _lines(path):
    return path.read_text().splitlines()


def test_intact_chain(ledger, capsys):
    entries = read_ledger(ledger)
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert entries[0]["prev"] == GENESIS
    assert all(
        b["prev"] == a["hash"] == entry_hash(a) for a, b in zip(entries[:-1], entries[1:], strict=True)
    )
    assert verify_ledger(ledger) == (True, f"4 entries intact; head {entries[-1]['hash'][:16]}")
    assert main(["ledger", "verify", str(ledger)]) == 0
    assert "intact" in capsys.readouterr().out


def _edit(path):
    lines = _lines(path)
    e = json.loads(lines[1])
    e["passed"] = not e["passed"]
    lines[1] = json.dumps(e, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    return "entry 2: its hash does not match"


def _edit_and_rehash(path):
    # A forger who recomputes the edited entry's own hash still breaks the next entry's link.
    lines = _lines(path)
    e = json.loads(lines[1])
    e["certificate_sha256"] = "f" * 64
    e["hash"] = entry_hash(e)
    lines[1] = json.dumps(e, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    return "entry 3: does not follow entry 2"


def _remove(path):
    lines = _lines(path)
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    return "entry 2: does not follow entry 1"


def _reorder(path):
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")
    return "entry 2: does not follow entry 1"


def _blank(path):
    lines = _lines(path)
    lines[2] = ""
    path.write_text("\n".join(lines) + "\n")
    return "entry 3: empty line"


def _garble(path):
    lines = _lines(path)
    lines[0] = lines[0][:-3]
    path.write_text("\n".join(lines) + "\n")
    return "entry 1: not valid JSON"


@pytest.mark.parametrize("tamper", [_edit, _edit_and_rehash, _remove, _reorder, _blank, _garble])
def test_tampering_is_caught_at_the_first_bad_entry(ledger, capsys, tamper):
    expected = tamper(ledger)
    ok, msg = verify_ledger(ledger)
    assert not ok and msg.startswith(expected)
    assert main(["ledger", "verify", str(ledger)]) == 1
    assert expected in capsys.readouterr().err
    with pytest.raises(ValueError, match="not intact"):
        append_entry(ledger, _cert(9), "0" * 64)  # never extends a broken chain


def test_usage(tmp_path, capsys):
    assert main(["ledger", "check", "x"]) == 2
    assert main(["ledger", "verify", str(tmp_path / "none.jsonl")]) == 1
    assert "not found" in capsys.readouterr().err
