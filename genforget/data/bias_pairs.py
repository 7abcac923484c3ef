"""Paired bias benchmarks in the CrowS-Pairs / StereoSet shape: a stereotyped sentence and a
minimally different less stereotyped one, per pair.

Accepted files (one pair per line or row):

- JSONL with ``sent_more`` (the more stereotyped sentence) and ``sent_less`` (CrowS-Pairs' own
  field names, Nangia et al. 2020, "CrowS-Pairs", arXiv:2010.00133), or ``stereotype`` and
  ``anti_stereotype`` (StereoSet's labels, Nadeem et al. 2021, arXiv:2004.09456, for its
  intrasentence items flattened to one pair per line); optionally ``bias_type`` (gender, race-color,
  nationality, ...);
- CSV with the same columns (``crows_pairs_anonymized.csv`` as CrowS-Pairs distributes it).

Nothing is downloaded: the user points at a copy they hold. Every problem is a
:class:`~genforget.config.UsageError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from genforget.config import UsageError

_KEYS = (("sent_more", "sent_less"), ("stereotype", "anti_stereotype"))


def _pair(row: dict, where: str) -> dict:
    for more, less in _KEYS:
        if more in row and less in row:
            a, b = row[more], row[less]
            if not isinstance(a, str) or not isinstance(b, str) or not a.strip() or not b.strip():
                raise UsageError(f"{where}: {more!r} and {less!r} must be non-empty strings")
            if a.strip() == b.strip():
                raise UsageError(f"{where}: the two sentences are identical (a pair must differ)")
            bias = row.get("bias_type") or "unspecified"
            return {"sent_more": a.strip(), "sent_less": b.strip(), "bias_type": str(bias).strip()}
    keys = sorted(row)[:8]
    raise UsageError(
        f"{where}: no sentence pair; expected 'sent_more' and 'sent_less' (CrowS-Pairs) or 'stereotype' "
        f"and 'anti_stereotype' (StereoSet), the record has {keys}"
    )


def load_bias_pairs(path: str | Path) -> list[dict]:
    """The pairs of a ``.jsonl`` / ``.json`` (one object a line) or ``.csv`` file as
    ``{"sent_more", "sent_less", "bias_type"}`` dicts (``bias_type`` "unspecified" when absent)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"bias_pairs: not found: {p} (a JSONL or CSV file of sent_more/sent_less pairs)")
    pairs = []
    try:
        if p.suffix.lower() == ".csv":
            with p.open(encoding="utf-8", newline="") as f:
                for n, row in enumerate(csv.DictReader(f), 2):  # line 1 is the header
                    pairs.append(_pair(row, f"bias_pairs {p}:{n}"))
        else:
            with p.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UsageError(f"bias_pairs {p}:{n}: not valid JSON ({e.msg})") from e
                    if not isinstance(row, dict):
                        raise UsageError(f"bias_pairs {p}:{n}: expected an object with sent_more/sent_less")
                    pairs.append(_pair(row, f"bias_pairs {p}:{n}"))
    except UnicodeDecodeError as e:
        raise UsageError(f"bias_pairs {p}: not UTF-8 text ({e.reason})") from e
    if not pairs:
        raise UsageError(f"bias_pairs {p}: no pairs in the file")
    return pairs
