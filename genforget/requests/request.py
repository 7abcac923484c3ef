"""Deletion-request files: one request per YAML/JSON file, validated strictly.

```yaml
id: REQ-2026-0042          # the controller's own reference
kind: person               # person | work | association
identifiers:               # person: any subset; each a list of values
  name: ["Jane Roe"]
  email: ["jane.roe@example.org"]
  phone: ["+1 (555) 010-0199"]
documents: []              # work: paths of the text(s) taken down, or of image files
hashes: []                 # work (images): "sha256:<64 hex>" of a file, "phash:<16 hex>" of an image
```

A ``work`` whose documents are image files (``.png``, ``.jpg`` ...) or that gives ``hashes`` is an
image takedown (``kind: image`` says the same): it runs on a diffusers pipeline and an
image–caption dataset (:mod:`genforget.diffusion.forget_images`). Image and text documents are not
mixed in one request.

``kind: association`` names a protected attribute, the outcome words and the fair rule instead
(``attribute``, ``outcome``, ``rule``: see :mod:`genforget.requests.association`).

Every problem (unknown key, empty request, unknown kind, unreadable document) raises
:class:`~genforget.config.UsageError` naming the file and the field, before anything is written.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from genforget.config import UsageError
from genforget.methods.registry import did_you_mean
from genforget.requests.association import ASSOCIATION_KEYS, AssociationSpec, parse_association

KINDS = ("person", "work", "image", "association")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
IDENTIFIER_TYPES = ("name", "email", "phone", "iban", "id_number", "address", "other")
TOP_KEYS = ("id", "kind", "identifiers", "documents", "hashes", "region", *ASSOCIATION_KEYS)


@dataclass
class Request:
    """A validated deletion request. ``identifiers`` maps a type to its values (NFKC-normalised);
    ``documents`` holds the texts of a ``work`` request (read at load time, never written out)."""

    id: str
    kind: str
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    documents: list[str] = field(default_factory=list)
    document_paths: list[str] = field(default_factory=list)
    region: str = "US"  # default country of phone numbers written without a country code
    path: str = ""
    association: AssociationSpec | None = None  # kind: association
    images: list[str] = field(default_factory=list)  # image takedown: the files' paths (read later)
    image_hashes: list[str] = field(default_factory=list)  # "sha256:..." / "phash:..." (lower case)

    @property
    def is_image(self) -> bool:
        """An image takedown (image files or image hashes), whatever its ``kind`` said."""
        return bool(self.images or self.image_hashes)

    def values(self) -> list[str]:
        """Every identifier value (for leak checks); documents are not included."""
        return [v for vals in self.identifiers.values() for v in vals]

    def n_identifiers(self) -> int:
        return (
            sum(len(v) for v in self.identifiers.values())
            + len(self.documents)
            + len(self.images)
            + len(self.image_hashes)
        )


def _norm(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).split())


def parse_request(data: object, source: str = "<request>", base_dir: Path | None = None) -> Request:
    """Validate a request already read into Python objects; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a request is a mapping with keys {', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            raise UsageError(f"{source}: unknown key {key!r}.{did_you_mean(str(key), list(TOP_KEYS))}")
    rid = data.get("id")
    if not isinstance(rid, str | int) or not str(rid).strip():
        raise UsageError(f"{source}: field 'id' is required (the controller's reference, e.g. REQ-2026-0042)")
    kind = data.get("kind", "person")
    if kind not in KINDS:
        raise UsageError(f"{source}: field 'kind' must be one of {', '.join(KINDS)} (got {kind!r})")
    given = [k for k in ASSOCIATION_KEYS if k in data]
    if kind == "association":
        if data.get("identifiers") or data.get("documents") or data.get("hashes"):
            raise UsageError(
                f"{source}: kind: association takes attribute, outcome and rule, not identifiers or documents"
            )
        spec = parse_association(data, source, base_dir)
        return Request(str(rid).strip(), kind, path=source, association=spec)
    if given:
        raise UsageError(
            f"{source}: {', '.join(given)} belong(s) to kind: association (this request is kind: {kind})"
        )
    region = data.get("region", "US")
    if not isinstance(region, str) or len(region) != 2:
        raise UsageError(f"{source}: field 'region' must be a two-letter country code (got {region!r})")
    ids_raw = data.get("identifiers") or {}
    if not isinstance(ids_raw, dict):
        raise UsageError(f"{source}: field 'identifiers' must map a type to a list of values")
    identifiers: dict[str, list[str]] = {}
    for typ, vals in ids_raw.items():
        if typ not in IDENTIFIER_TYPES:
            raise UsageError(
                f"{source}: unknown identifier type {typ!r} in 'identifiers'."
                f"{did_you_mean(str(typ), list(IDENTIFIER_TYPES))} Known: {', '.join(IDENTIFIER_TYPES)}"
            )
        if isinstance(vals, str):
            vals = [vals]
        if not isinstance(vals, list) or not all(isinstance(v, str | int) for v in vals):
            raise UsageError(f"{source}: identifiers.{typ} must be a list of strings")
        clean = [_norm(str(v)) for v in vals if _norm(str(v))]
        if len(clean) != len(vals):
            raise UsageError(f"{source}: identifiers.{typ} holds an empty value")
        if clean:
            identifiers[typ] = list(dict.fromkeys(clean))
    docs = data.get("documents") or []
    if isinstance(docs, str):
        docs = [docs]
    if not isinstance(docs, list):
        raise UsageError(f"{source}: field 'documents' must be a list of file paths")
    texts, paths, images = [], [], []
    for d in docs:
        p = Path(str(d))
        if not p.is_absolute() and base_dir is not None and not p.exists():
            p = base_dir / p
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if not p.is_file():
                raise UsageError(f"{source}: documents: image file {str(d)!r} not found")
            images.append(str(p))
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{source}: documents: cannot read {str(d)!r} ({type(e).__name__})") from e
        if not text.strip():
            raise UsageError(f"{source}: documents: {str(d)!r} is empty")
        texts.append(text)
        paths.append(str(d))
    hashes = _image_hashes(data.get("hashes"), source)
    if kind == "person" and (docs or hashes):
        raise UsageError(
            f"{source}: 'documents' and 'hashes' belong to kind: work; a person request names identifiers"
        )
    if kind in ("work", "image") and identifiers:
        raise UsageError(f"{source}: kind: {kind} takes 'documents' (or 'hashes'), not 'identifiers'")
    if (images or hashes) and texts:
        raise UsageError(
            f"{source}: documents mixes image files with text files; an image takedown and a text "
            "takedown run on different models: file them as two requests"
        )
    if kind == "image" and not (images or hashes):
        raise UsageError(
            f"{source}: kind: image needs image files under 'documents' ({', '.join(IMAGE_SUFFIXES)}) "
            "or 'hashes'"
        )
    if images or hashes:
        return Request(str(rid).strip(), kind, path=source, images=images, image_hashes=hashes)
    if not identifiers and not texts:
        what = "identifiers (name, email, phone, ...)" if kind == "person" else "documents"
        raise UsageError(f"{source}: empty request: give at least one value under {what}")
    return Request(str(rid).strip(), kind, identifiers, texts, paths, region.upper(), source)


def _image_hashes(raw: object, source: str) -> list[str]:
    """``hashes``: ``sha256:<64 hex>`` (a file's bytes) or ``phash:<16 hex>`` (a perceptual hash,
    as ``imagehash.phash`` prints it), lower-cased and de-duplicated."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise UsageError(
            f"{source}: field 'hashes' must be a list like ['sha256:<64 hex>', 'phash:<16 hex>']"
        )
    out = []
    for h in raw:
        algo, _, hexd = str(h).strip().lower().partition(":")
        width = {"sha256": 64, "phash": 16}.get(algo)
        if width is None or len(hexd) != width or any(c not in "0123456789abcdef" for c in hexd):
            raise UsageError(
                f"{source}: hashes: {str(h)[:80]!r} is not 'sha256:<64 hex digits>' or 'phash:<16 hex digits>'"
            )
        out.append(f"{algo}:{hexd}")
    return list(dict.fromkeys(out))


def load_request(path: str | Path) -> Request:
    """Read and validate one request file (``.yaml``, ``.yml`` or ``.json``)."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--request: cannot read {str(p)!r} ({type(e).__name__})") from e
    try:
        data = json.loads(raw) if p.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        # The parser's message may quote the file's content, i.e. an identifier: give the line only.
        line = getattr(e, "lineno", None) or getattr(getattr(e, "problem_mark", None), "line", None)
        raise UsageError(
            f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'} (line {line})"
        ) from e
    if data is None:
        raise UsageError(f"{p}: empty request file")
    return parse_request(data, str(p), p.parent)


def load_requests(paths: list[str | Path]) -> list[Request]:
    """Load several request files (a queue); duplicate ids are refused."""
    if not paths:
        raise UsageError("--request: give at least one request file")
    reqs = [load_request(p) for p in paths]
    seen: dict[str, str] = {}
    for r in reqs:
        if r.id in seen:
            raise UsageError(f"{r.path}: request id {r.id!r} already used by {seen[r.id]}")
        seen[r.id] = r.path
    return reqs
