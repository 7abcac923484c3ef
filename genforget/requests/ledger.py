"""The deletion ledger: append-only JSONL, each entry chained to the one before.

Each entry holds its certificate's SHA-256 and the previous entry's hash; its own ``hash`` is
the SHA-256 of the entry's canonical JSON without that field. Editing an entry breaks its hash,
removing or reordering entries breaks the next entry's ``prev`` (and ``seq``).
``genforget ledger verify PATH`` recomputes the chain. (Dropping the *last* entries leaves a
shorter valid chain: keep the latest ``hash`` elsewhere, e.g. in the certificate store, to
detect a truncation.)
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

GENESIS = "0" * 64
FIELDS = ("seq", "time_utc", "request_hmac", "certificate_sha256", "passed", "status", "prev", "hash")


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _entries(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] if path.exists() else []


def append_entry(path: str | Path, certificate: dict, certificate_sha256: str) -> dict:
    """Append the entry of one certificate; returns it. Refuses to extend a broken chain."""
    path = Path(path)
    lines = _entries(path)
    if lines:
        ok, msg = verify_ledger(path)
        if not ok:
            raise ValueError(f"ledger {path} is not intact ({msg}); not appending to it")
    prev = json.loads(lines[-1])["hash"] if lines else GENESIS
    entry = {
        "seq": len(lines),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "request_hmac": certificate["request"]["ref_hmac"],
        "certificate_sha256": certificate_sha256,
        "passed": bool(certificate["passed"]),
        "status": certificate["status"],
        "prev": prev,
    }
    entry["hash"] = entry_hash(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def read_ledger(path: str | Path) -> list[dict]:
    return [json.loads(ln) for ln in _entries(Path(path))]


def verify_ledger(path: str | Path) -> tuple[bool, str]:
    """``(True, summary)`` when the chain is intact, else ``(False, what is wrong at the first bad
    entry)``; entries are numbered from 1 as lines of the file."""
    path = Path(path)
    if not path.is_file():
        return False, f"ledger not found: {path}"
    prev, n = GENESIS, 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            return False, f"entry {n}: empty line (an entry was removed or the file edited)"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return False, f"entry {n}: not valid JSON (edited)"
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            return False, f"entry {n}: fields differ from {', '.join(FIELDS)} (edited)"
        if entry["hash"] != entry_hash(entry):
            return False, f"entry {n}: its hash does not match its content (edited)"
        if entry["prev"] != prev or entry["seq"] != n - 1:
            return False, (
                f"entry {n}: does not follow entry {n - 1} (an entry before it was removed, inserted "
                "or reordered)"
            )
        prev = entry["hash"]
    return True, f"{n} entries intact; head {prev[:16]}"
