"""An image takedown, end to end: locate the work's copies, unlearn them, verify, certify, log.

The image counterpart of the LM deletion-request pipeline (:mod:`genforget.requests.pipeline`):
the request names image files; :func:`genforget.diffusion.image_locate.locate_images` finds the
training records that are copies of them (perceptual hash, so resized or re-encoded files match);
their captions are the prompts to unlearn (one :func:`genforget.diffusion.erase.erase_concept` run
per caption, every other caption of the training set held by the anchor term); the caller's
verification rows decide; the certificate has the LM certificate's shape (``kind: image``,
request and record ids as HMAC-SHA256 under the controller key, weights hashes before / after)
and is appended to the same hash-chained ledger. Nothing of the work is stored: no pixels, no
caption text, only hashes and counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.erase import EraseResult, erase_concept
from genforget.diffusion.image_locate import locate_images, precision_recall
from genforget.diffusion.pipeline import TextToImage
from genforget.diffusion.works import WorksData
from genforget.requests.certificate import certificate_markdown, hmac_hex, key_id, weights_sha256
from genforget.requests.ledger import append_entry


@dataclass
class ImageTakedown:
    """What a rights-holder's request says: an id (kept only as an HMAC) and the image files."""

    id: str
    images: list[str]
    max_distance: int = arg(10, "perceptual-hash bits a copy may differ by")


@dataclass
class LocatedWorks:
    """The training rows that are copies of the takedown's images, and their distinct captions
    (the prompts to unlearn); ``hashes``: each takedown image's perceptual hash."""

    rows: list[int]
    captions: list[str]
    hashes: list[str]


def locate_takedown(req: ImageTakedown, data: WorksData) -> LocatedWorks:
    """The rows of ``data`` that are copies of any of ``req.images``."""
    found = locate_images(req.images, data.images, req.max_distance)
    rows = sorted({r for f in found for r in f.rows})
    return LocatedWorks(rows, list(dict.fromkeys(data.captions[r] for r in rows)), [f.hash for f in found])


def locate_quality(located: LocatedWorks, data: WorksData, works: list[str]) -> dict[str, float]:
    """Precision and recall of the located rows against the rows that really hold ``works``."""
    truth = [i for i, w in enumerate(data.work_of) if w in works]
    p, r = precision_recall(located.rows, truth)
    return {"precision": p, "recall": r, "located": len(located.rows), "true_copies": len(truth)}


def unlearn_located(
    victim: TextToImage, located: LocatedWorks, data: WorksData, ucfg: UnlearnConfig, dcfg: DiffusionConfig
) -> EraseResult:
    """Erase every located caption in turn; the prompts to keep are all the other captions of the
    training set, so the anchor term holds what the model should go on drawing. The located
    images themselves are the forget images (methods that use data, not ESD, train on them)."""
    if not located.captions:
        raise ValueError("no training record matches the takedown's images: nothing to unlearn")
    keep = [c for c in dict.fromkeys(data.captions) if c not in located.captions]
    fields = {k: v for k, v in dataclasses.asdict(ucfg).items() if k != "method"}
    model, result = victim, None
    for cap in located.captions:
        rows = [r for r in located.rows if data.captions[r] == cap]
        result = erase_concept(model, cap, ucfg.method, keep_prompts=keep, forget_images=data.images[rows],
                               diffusion_config=dcfg, **fields)  # fmt: skip
        model = result.model
    return result


def image_certificate(
    req: ImageTakedown, located: LocatedWorks, n_records: int, key: bytes, before: Any, after: Any,
    ucfg: UnlearnConfig, verification: list[dict], started_utc: str, extra: dict | None = None,
) -> dict:  # fmt: skip
    """The certificate (the LM one's format, ``kind: image``). ``before`` / ``after``: the UNets;
    ``verification``: rows ``{name, before, after, bar, n, passed[, gating]}``."""
    import genforget

    return {
        "format": "genforget-certificate/1",
        "request": {
            "ref_hmac": hmac_hex(key, "request:" + req.id),
            "content_hmac": hmac_hex(key, "content:" + json.dumps(sorted(located.hashes))),
            "kind": "image",
            "identifier_types": {"image": len(req.images)},
            "documents_hmac": [hmac_hex(key, "image-phash:" + h) for h in located.hashes],
        },
        "status": "unlearned" if located.rows else "no records located",
        "located": {
            "records": len(located.rows),
            "occurrences": {"image": len(located.rows)},
            "record_ids_hmac": sorted(hmac_hex(key, f"record:{r}") for r in located.rows),
            "captions_sha256": [hashlib.sha256(c.encode()).hexdigest() for c in located.captions],
        },
        "data": {"records_scanned": n_records, "near_dup": {"phash_max_bits": req.max_distance}},
        "model": {
            "before_sha256": weights_sha256(before),
            "after_sha256": weights_sha256(after),
            "saved_as": "full",
        },  # fmt: skip
        "method": {"name": ucfg.method, "config": dataclasses.asdict(ucfg)},
        "genforget_version": genforget.__version__,
        "key_id": key_id(key),
        "times": {"started_utc": started_utc, "finished_utc": utc_now()},
        "verification": verification,
        **(extra or {}),
        "passed": all(r["passed"] for r in verification if r.get("gating", True)),
    }


def write_certificate(cert: dict, out: Path, ledger: Path) -> dict:
    """``certificate.json`` and ``certificate.md`` in ``out``; the ledger entry appended."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(cert, indent=2) + "\n"
    (out / "certificate.json").write_text(text)
    (out / "certificate.md").write_text(certificate_markdown(cert))
    return append_entry(ledger, cert, hashlib.sha256(text.encode()).hexdigest())


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
