"""SISA bookkeeping: the config, stable hash-based shard/slice assignment and the manifest.

A record's place is a pure function of its id: ``sha256(id)`` picks the shard and the slice, so
a deletion finds its shard without a scan, and training from scratch on the remaining records
puts every remaining record back where it was (what makes deletion exact). The manifest maps
id hashes, never ids or text, to ``(shard, slice)``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class SisaConfig:
    """How each shard's LoRA adapter is trained (plain causal-LM NLL on the shard's records).

    ``epochs`` is the whole-shard budget: stage ``r`` (slices ``0..r``) runs
    ``epochs * 2 / (R + 1)`` passes over its data (Bourtoule et al.'s rule), so a shard sees about
    ``epochs`` passes in total whatever ``n_slices`` is, and R only moves cost from deletion time
    to storage.
    """

    n_shards: int = 4
    n_slices: int = 1
    epochs: float = 4.0
    learning_rate: float = 1e-3
    batch_size: int = 8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    # Empty: every linear layer of the decoder blocks (genforget.adapters.resolve_lora_targets).
    lora_target_modules: list[str] = field(default_factory=list)
    max_length: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_shards", "n_slices", "batch_size", "lora_r", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("epochs", "learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)})")

    def stage_steps(self, n_examples: int) -> int:
        """Optimizer steps of one slice stage over ``n_examples`` cumulative examples."""
        if n_examples == 0:
            return 0
        passes = self.epochs * 2.0 / (self.n_slices + 1)
        return max(1, math.ceil(passes * n_examples / self.batch_size))

    def to_dict(self) -> dict:
        return asdict(self)


def id_hash(record_id: object) -> str:
    """Hex SHA-256 of a record id (the only form in which ids are stored)."""
    return hashlib.sha256(str(record_id).encode("utf-8")).hexdigest()


def assign(h: str, n_shards: int, n_slices: int) -> tuple[int, int]:
    """``(shard, slice)`` of an id hash: independent bits of the hash pick each, so the
    assignment never depends on which other records exist."""
    return int(h[:16], 16) % n_shards, int(h[16:32], 16) % n_slices


class Manifest:
    """``{id_hash: (shard, slice)}`` with the lookups a deletion needs; saved as JSON."""

    def __init__(self, entries: dict[str, tuple[int, int]] | None = None) -> None:
        self.entries: dict[str, tuple[int, int]] = {
            h: (int(s), int(r)) for h, (s, r) in (entries or {}).items()
        }

    def __contains__(self, h: str) -> bool:
        return h in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def hashes(self, shard: int, upto_slice: int | None = None) -> list[str]:
        """Hashes in ``shard`` (slices ``0..upto_slice``), in slice order then hash order: the
        deterministic order training reads them in."""
        sel = [
            (r, h)
            for h, (s, r) in self.entries.items()
            if s == shard and (upto_slice is None or r <= upto_slice)
        ]
        return [h for _, h in sorted(sel)]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({h: list(v) for h, v in sorted(self.entries.items())}, indent=0))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls({h: tuple(v) for h, v in json.loads(path.read_text()).items()})


def corpus_records(corpus, splits: tuple[str, ...] = ("forget", "retain")) -> list[dict]:
    """SISA records of the built-in PII corpus, one per data subject: a person (id
    ``person-<pid>``) owns their bio and each bio sentence on its own (``texts``), a passage
    (``passage-<i>``) its text.

    The victim recipe reshuffles bios every epoch so that every fact is sometimes seen first,
    right where an extraction probe starts; the single sentences give fixed records that variety.
    """
    people, passages = corpus.train_documents(splits)
    out = [
        {"id": f"person-{p.pid}", "texts": [p.bio()["text"]] + [s for s, _ in p.sentences()]} for p in people
    ]
    return out + [{"id": f"passage-{corpus.passages.index(t)}", "text": t.text} for t in passages]
