"""Deletion certificates: evidence an auditor can check that holds no personal data.

Identifiers are never written; the request reference and every record id are HMAC-SHA256
under a controller-held key, so the controller (who has the key and the request) can show a
given request and record were covered, and nobody else can test guesses against the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
from pathlib import Path

import torch


def load_or_create_key(path: str | Path) -> bytes:
    """The controller key at ``path``; a new random 256-bit key (mode 0600) with a warning when
    the file does not exist yet."""
    path = Path(path)
    if path.is_file():
        key = path.read_text().strip()
        if len(key) < 32:
            raise ValueError(f"key file {path} holds fewer than 32 hex characters")
        return key.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    print(
        f"warning: key file {path} did not exist; created a new controller key there. Keep it: "
        "recheck and audits need the same key to match requests and records.",
        file=sys.stderr,
    )
    return key.encode()


def hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """Which key signed (a hash of the key, not the key)."""
    return hashlib.sha256(b"genforget-key-id:" + key).hexdigest()[:16]


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict (names and raw tensor bytes, sorted by name)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def request_record(key: bytes, req, content: dict, position: int, of: int) -> dict:
    """A certificate's ``request`` block: the request's id and its ``content`` (``id`` and ``kind``
    added) as keyed HMACs, nothing an outsider can read back; its kind, how many identifiers of
    each type, the HMACs of its documents' hashes and its place in the queue."""
    text = json.dumps({"id": req.id, "kind": req.kind, **content}, sort_keys=True)
    return {
        "ref_hmac": hmac_hex(key, "request:" + req.id),
        "content_hmac": hmac_hex(key, "content:" + text),
        "kind": req.kind,
        "identifier_types": {k: len(v) for k, v in req.identifiers.items()},
        "documents_hmac": [
            hmac_hex(key, "document:" + hashlib.sha256(d.encode()).hexdigest()) for d in req.documents
        ],
        "queue": {"position": position, "of": of},
    }


def file_certificate(cert: dict, path: Path, ledger_path: Path, position: int) -> dict:
    """Write ``cert`` as ``path`` (JSON) and its Markdown beside it, chain it into the ledger, say
    so; returns the ledger entry."""
    from genforget.requests.ledger import append_entry

    text = json.dumps(cert, indent=2) + "\n"
    path.write_text(text)
    path.with_suffix(".md").write_text(certificate_markdown(cert))
    entry = append_entry(ledger_path, cert, hashlib.sha256(text.encode()).hexdigest())
    print(
        f"[forget] request {position}: {cert['status']}"
        + (f", evidence: {cert['evidence']}" if cert.get("evidence") else "")
        + f", passed={cert['passed']}; {path} "
        f"(ledger entry {entry['seq'] + 1})"
    )
    return entry


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def relearn_markdown(sp: dict | None) -> list[str]:
    """The relearn-speed section: both extraction curves as a table, numbers only."""
    if not sp:
        return []
    if not sp["measured"]:
        return [f"Relearn speed: not measured ({sp['reason']}).", ""]
    b, c = sp["budgets"], sp["curves"]
    return [
        "## Relearn speed",
        "",
        f"Greedy extraction after k steps of fine-tuning a copy of the unlearned model (lr "
        f"{sp['learning_rate']:g}, batch {sp['batch_size']}) on the located records, and another copy "
        "on their twins (the same records with fresh fake identifiers, never trained on). A faster "
        "rise than the twins' means the data was suppressed, not removed.",
        "",
        "| k steps | " + " | ".join(str(k) for k in b) + " |",
        "| --- |" + " --- |" * len(b),
        "| located records | " + " | ".join(f"{v:.2f}" for v in c["located"]) + " |",
        "| twins (never seen) | " + " | ".join(f"{v:.2f}" for v in c["twins"]) + " |",
        "",
        f"Mean gap (area) {sp['area']:.3f}; largest gap {sp['max_gap']:.2f} at {sp['max_gap_at']:g} steps.",
        "",
    ]


def _association_lines(cert: dict) -> list[str]:
    """``kind: association``: the attribute, outcomes and rule, and which way each value leaned."""
    a = cert.get("association")
    if not a:
        return []
    leans = cert["located"].get("leans", {})
    return [
        f"- attribute: {a['attribute']} ({', '.join(a['values'])}); outcomes: {a['outcomes']['positive']} / "
        f"{a['outcomes']['negative']}; fair rule: {a['rule']['field']} {a['rule']['positive_if']}",
        "- disagreements with the rule lean: " + (", ".join(f"{v} {w}" for v, w in leans.items()) or "–"),
    ]


def certificate_markdown(cert: dict) -> str:
    """The certificate as a Markdown page (the same facts as the JSON)."""
    r, m = cert["request"], cert["model"]
    lines = [
        f"# Deletion certificate — {'PASSED' if cert['passed'] else 'NOT PASSED'}",
        "",
        f"- request (HMAC-SHA256 of the reference): `{r['ref_hmac']}`",
        f"- kind: {r['kind']}; identifiers by type: "
        + (", ".join(f"{k} {v}" for k, v in r["identifier_types"].items()) or "–"),
        *_association_lines(cert),
        f"- status: **{cert['status']}**"
        + (f"; evidence: **{cert['evidence']}**" if cert.get("evidence") else ""),
        f"- records scanned: {cert['data']['records_scanned']}; located: {cert['located']['records']}"
        + (
            f" (no corpus scanned: zero-shot, {zs['forget_texts']} of the model's {zs['generated']} "
            "own texts held the person's identifiers)"
            if (zs := cert["data"].get("zero_shot"))
            else ""
        ),
        "- occurrences by type: "
        + (", ".join(f"{k} {v}" for k, v in cert["located"]["occurrences"].items()) or "–"),
        f"- model weights SHA-256 before: `{m['before_sha256']}`",
        f"- model weights SHA-256 after: `{m['after_sha256'] or '(unchanged)'}`",
        f"- method: {cert['method']['name']} (full config in certificate.json)",
        *(
            [f"- unlearning outcome: **{o['status']}**: {o['reason']}"]
            if (o := cert.get("unlearning_outcome"))
            else []
        ),
        f"- genforget {cert['genforget_version']}; key id {cert['key_id']}",
        f"- started {cert['times']['started_utc']}, finished {cert['times']['finished_utc']}",
        "",
    ]
    if cert["verification"]:
        lines += ["| check | before | after | bar | n | result |", "| --- | --- | --- | --- | --- | --- |"]
        for v in cert["verification"]:
            res = "pass" if v["passed"] else ("FAIL" if v.get("gating", True) else "over bar")
            lines.append(
                f"| {v['name']} | {_fmt(v['before'])} | {_fmt(v['after'])} | {v['bar']} | {v['n']} | {res} |"
            )
        lines.append("")
    lines += relearn_markdown(cert.get("relearn_speed"))
    lines.append(
        f"{cert['located']['records']} record ids are listed in certificate.json as HMAC-SHA256 "
        "under the controller key; no identifier value or record text is stored here."
    )
    return "\n".join(lines) + "\n"


def removal_evidence(rows: list[dict], speed: dict | None) -> str:
    """What the verification shows, whatever gates ``passed``:

    - ``removed``: every forget-extraction and membership row passes, and so does the relearn
      audit (the located records come back no faster than their never-seen twins);
    - ``suppressed``: extraction and membership pass but relearning brings the data back faster
      than the twins: hidden, not gone (LoRA adapters and plain NPO, docs/robustness.md);
    - ``not forgotten``: an extraction or membership row fails;
    - ``forgotten, relearn not measured`` / ``nothing located``.
    """
    forget = [r for r in rows if r["name"].startswith(("forget extraction", "membership"))]
    if not forget:
        return "nothing located"
    if not all(r["passed"] for r in forget):
        return "not forgotten"
    relearn = [r for r in rows if r["name"].startswith("relearn speed")]
    if not (speed or {}).get("measured") or not relearn:
        return "forgotten, relearn not measured"
    return "removed" if relearn[0]["passed"] else "suppressed"
