"""The locate prefilter: one multi-pattern automaton over raw bytes, before any JSON parsing.

Profiling the single-process locate (1 M records, 9-10 MB/s on one core) put 48 % of the time
in the identifier regexes, 14 % in the neighbour regex and 20 % in decoding JSON: per-record
work on records that hold nothing. The prefilter keeps a record only when its bytes hold an
*anchor* and hands only those to the exact matcher (:class:`~genforget.requests.match.Matcher`).

It must never drop a true match, so each anchor is a literal that every match of its pattern
contains, in a *view* where the formats the patterns forgive are undone on both sides:

- ASCII letters lower-cased (the patterns run on lower-cased text);
- every separator a pattern allows between characters deleted (``" \\t.-()/"`` and NUL), so
  "555.010.0199", "(555) 010-0199" and "5550100199" all hold ``5550100199``;
- JSON's ``\\t`` and ``\\/`` escapes undone first (an escaped backslash is protected);
- anchors never hold a character JSON escapes (quote, backslash, control characters).

A record whose bytes are not ASCII (or hold a ``\\u`` escape) is decoded and NFKC-normalised
first and the same automaton runs over the view of that text (see :mod:`.scan`): full-width
digits, ligatures and decomposed accents cannot hide from it. The automaton is
``ahocorasick-rs`` (Rust, SIMD prefilters; 725 MB/s here) when installed
(``genforget[scale]``), else one ``re`` alternation over the whole block (same hits, slower).
"""

from __future__ import annotations

import re

import numpy as np

from genforget.requests.match import VIEW_DELETE

_DELETE = VIEW_DELETE.encode()
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_ESCAPES = re.compile(rb"\\[t/]")
_DELMASK = bytes(1 if i in _DELETE else 0 for i in range(256))
_DELMASK_TABLE = bytes.maketrans(bytes(range(256)), _DELMASK)


class Prefilter:
    """Anchors of every pattern of a request queue, searched in one pass.

    ``always``: no anchor can stand for some pattern (then every record is a candidate; the
    scan says so). The automaton is built lazily in the process that scans: it cannot be
    pickled to a worker.
    """

    def __init__(self, anchors: list[str], always: bool = False) -> None:
        self.anchors = sorted({a.encode("utf-8", "surrogatepass") for a in anchors if a})
        self.always = always or not self.anchors
        self._find = None
        self.engine = ""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_find": None}

    def _build(self):
        try:
            import ahocorasick_rs

            ac = ahocorasick_rs.BytesAhoCorasick(self.anchors)
            self.engine = "ahocorasick-rs"
            return lambda v: [s for _, s, _ in ac.find_matches_as_indexes(v)]
        except ImportError:
            # Longest first: with leftmost-first alternation a shorter anchor sharing a prefix
            # would otherwise hide nothing (any hit marks the record), but keep it deterministic.
            rx = re.compile(b"|".join(re.escape(a) for a in sorted(self.anchors, key=len, reverse=True)))
            self.engine = "re"
            return lambda v: [m.start() for m in rx.finditer(v)]

    def positions(self, view: bytes) -> np.ndarray:
        """Start offsets of anchor hits in ``view`` (non-overlapping; any hit marks its record)."""
        if self._find is None:
            self._find = self._build()
        return np.asarray(self._find(view), dtype=np.int64)

    @staticmethod
    def json_view(block: bytes) -> bytes:
        """View of raw JSONL bytes: ``\\t`` / ``\\/`` escapes undone, lower-cased, separators
        deleted. Newlines are kept, so a hit maps to its line."""
        if b"\\" in block and _ESCAPES.search(block):
            block = block.replace(b"\\\\", b"\x01\x01").replace(b"\\t", b" ").replace(b"\\/", b"/")
        return block.translate(_LOWER, _DELETE)

    @staticmethod
    def raw_view(buf: bytes) -> bytes:
        """View of raw UTF-8 text (parquet / Arrow column buffers, ``.txt``)."""
        return buf.translate(_LOWER, _DELETE)

    @staticmethod
    def text_view(low: str) -> bytes:
        """View of lower-cased NFKC text (records decoded first). The separators are ASCII, and
        UTF-8 never puts an ASCII byte inside another character: deleting them from the encoded
        bytes (C speed) equals :func:`~genforget.requests.match.view_of` (``str.translate``
        with a table: 12 us a record measured)."""
        return low.encode("utf-8", "surrogatepass").translate(None, _DELETE)

    @staticmethod
    def raw_view_starts(buf: bytes, starts: np.ndarray) -> np.ndarray:
        """``starts`` (ascending offsets of records in ``buf``, each non-empty but the last) moved to
        :meth:`raw_view` coordinates: minus the bytes the view deletes before each."""
        mask = np.frombuffer(buf.translate(_DELMASK_TABLE), np.uint8)
        out = np.full(len(starts), len(buf) - int(mask.sum()), dtype=np.int64)  # empty records at the end
        inside = starts[starts < len(buf)]
        if len(inside):
            per = np.add.reduceat(mask, inside, dtype=np.int64)  # deleted bytes of each record
            before = np.concatenate(([0], np.cumsum(per)[:-1]))
            out[: len(inside)] = inside - before - int(mask[: inside[0]].sum())
        return out


def lines_of(positions: np.ndarray, newlines: np.ndarray) -> np.ndarray:
    """Line index (0-based) of each byte position, given the newline offsets of the buffer."""
    return np.unique(np.searchsorted(newlines, positions))


def records_of(positions: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Record index of each position, given ascending record start offsets."""
    return np.unique(np.searchsorted(starts, positions, side="right") - 1)
