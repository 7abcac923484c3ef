"""The locate scan: shards in, located records and seeded samples out, the same in one process or
spread over many (:mod:`genforget.requests.scale` runs it as a datatrove pipeline step).

Per block of raw bytes (8 MB of JSONL lines, or a parquet/Arrow batch's text buffer):

1. the :class:`~genforget.requests.prefilter.Prefilter` view and automaton mark the records
   holding an anchor (C/Rust speed; no per-record Python);
2. records whose bytes are not ASCII (or hold a ``\\u`` escape), and JSONL lines that do not
   start with the text field (``{"text": "``) are decoded first: the former are NFKC-normalised
   and checked on the view of that text (ASCII records need no NFKC), the latter are read as the
   trainer reads them (prompt/target pairs are one text, so their raw bytes prove nothing);
3. only the kept records are parsed (``orjson`` when installed) and run through the exact
   matcher, the n-gram and near-duplicate indexes and the neighbour pattern, in chunks;
4. the retain and neighbour samples are *bottom-k* samples: each record's key is a 64-bit hash of
   (seed, shard prefix, record number), vectorised over the block, and the k smallest keys among
   the records holding no identifier are kept. A uniform seeded sample, like the reservoir it
   replaces, but one that any split of the shards reproduces exactly: the merge keeps the k
   smallest of the tasks' samples.

Records the prefilter skips are not parsed, so a malformed line holding no anchor is counted,
not reported; a kept or sampled one is an error naming its file and line.
"""

from __future__ import annotations

import bisect
import json
import re
import warnings
from typing import TYPE_CHECKING

import numpy as np

from genforget.config import UsageError
from genforget.requests.match import (
    Identifier,
    Matcher,
    best_anchor,
    identifier_anchor,
    merge_spans,
    normalise_with_map,
)
from genforget.requests.neardup import NearDupIndex
from genforget.requests.prefilter import Prefilter, lines_of, records_of
from genforget.requests.records import (
    Hit,
    Located,
    LocateResult,
    ScanOptions,
    WorkIndex,
    neighbour_pattern,
    neighbour_terms,
    record_text,
)
from genforget.requests.sample import FULL as _FULL
from genforget.requests.sample import BottomK, record_keys, shard_base
from genforget.requests.sources import Shard, column_batches, jsonl_blocks, open_shard

if TYPE_CHECKING:  # annotations only: request.py imports association.py, which reads records
    from genforget.requests.request import Request

CHUNK = 4096  # kept records matched per joined chunk

try:
    import orjson

    _loads, _JSONError = orjson.loads, orjson.JSONDecodeError
except ImportError:  # the plain install: same results, slower parse of the kept records
    _loads, _JSONError = json.loads, json.JSONDecodeError


class Scanner:
    """A compiled request queue and the running state of one scan (one process or one task).

    ``prefilter=False`` sends every record to the exact matcher: the reference the prefilter
    is tested against.
    """

    def __init__(self, requests: list[Request], options: ScanOptions | None = None) -> None:
        o = options or ScanOptions()
        self.render = o.render  # chat records ('messages') read through the model's template
        self.text_field, self.seed, self.work_ngram = o.text_field, o.seed, o.work_ngram
        self.retain_size, self.neighbour_size = o.retain_size, o.neighbour_size
        regions = {ri: r.region for ri, r in enumerate(requests)}
        self.idents = [
            Identifier(ri, typ, k, v)
            for ri, r in enumerate(requests)
            for typ, vals in r.identifiers.items()
            for k, v in enumerate(vals)
        ]
        try:
            self.matcher = Matcher(self.idents, regions) if self.idents else None
            anchors = [identifier_anchor(i, regions[i.req]) for i in self.idents]
        except (ValueError, ImportError) as e:
            raise UsageError(f"identifiers: {e}") from e
        self.index = {i.group: n for n, i in enumerate(self.idents)}
        docs = [(ri, d) for ri, r in enumerate(requests) for d in r.documents]
        self.work = WorkIndex(requests, o.work_ngram) if docs else None
        self.near = NearDupIndex(docs, o.near_dup) if docs and o.near_dup > 0 else None
        terms = neighbour_terms(requests)
        self.neighbour_pat = neighbour_pattern(terms)
        anchors += [best_anchor([w.lower() for w in t]) for t in terms]
        if self.work is not None:
            anchors += self.work.anchors()
        if self.near is not None:
            anchors += [best_anchor([w]) for w in self.near.anchors if w.isascii()]
        if o.prefilter and None in anchors:  # a fallback that costs speed says so (never a value)
            warnings.warn(
                "an identifier or neighbour term has no literal the byte prefilter can look for: "
                "every record is decoded and matched (slower, same result)",
                stacklevel=2,
            )
        self.pf = Prefilter([a for a in anchors if a], always=not o.prefilter or None in anchors)
        key = json.dumps(o.text_field).encode()
        self._std = re.compile(rb"\n(?![ \t]*\{[ \t]*" + re.escape(key) + rb'[ \t]*:[ \t]*")')
        self._std_first = re.compile(rb"[ \t]*\{[ \t]*" + re.escape(key) + rb'[ \t]*:[ \t]*"')
        self.reset()

    def reset(self) -> None:
        self.located: list[tuple[int, int, int, Located]] = []  # (shard, number, offset, record)
        self.retain, self.neigh = BottomK(self.retain_size), BottomK(self.neighbour_size)
        self.n_records = self.bytes = self.kept = 0

    # -- per shard -------------------------------------------------------------------------
    def scan(self, shard: Shard, si: int) -> None:
        """Scan one shard (``si``: its index in the plan), adding to the running state."""
        base = shard_base(self.seed, shard.prefix)
        if shard.fmt == "jsonl":
            line0 = off = 0
            for blk in jsonl_blocks(shard):
                line0 += self._jsonl(shard, si, base, blk, line0, off)
                off += len(blk)
        elif shard.fmt in ("parquet", "arrow"):
            row0 = 0
            for batch, _ in column_batches(shard, self.text_field):
                self._columns(shard, si, base, batch, row0)
                row0 += batch.num_rows
        else:
            with open_shard(shard) as f:
                raw = f.read()
            text = raw.decode("utf-8", errors="replace")
            self.bytes += len(raw)
            self._finish(si, base, np.array([0]), {0: text}, [(0, text, True)], set(), shard, [0])

    def _where(self, shard: Shard, n: int) -> str:
        return f"--data {shard.url}:{n}"

    def _parse(self, line: bytes, shard: Shard, n: int) -> tuple[object, str]:
        try:
            obj = _loads(line)
        except _JSONError as e:
            raise UsageError(f"{self._where(shard, n)}: not valid JSON ({getattr(e, 'msg', e)})") from e
        return obj, record_text(obj, self.text_field, self._where(shard, n), self.render)

    def _jsonl(self, shard: Shard, si: int, base: int, blk: bytes, line0: int, off: int) -> int:
        arr = np.frombuffer(blk, np.uint8)
        nl = np.flatnonzero(arr == 10)
        starts = np.concatenate(([0], nl[:-1] + 1))
        nums = line0 + 1 + np.arange(len(nl))
        texts: dict[int, str] = {}
        blank, forced = set(), set()
        exc = [] if self._std_first.match(blk) else [0]
        ends = [m.start() for m in self._std.finditer(blk)]
        exc += (np.searchsorted(nl, [e for e in ends if e < len(blk) - 1]) + 1).tolist()
        for i in exc:  # lines that do not start with the text field: read them as the trainer does
            line = blk[starts[i] : nl[i]]
            if not line.strip():
                blank.add(i)
                continue
            obj, texts[i] = self._parse(line, shard, int(nums[i]))
            if not (isinstance(obj, dict) and isinstance(obj.get(self.text_field), str)):
                forced.add(i)
        unsafe: set[int] = set()
        if not blk.isascii():
            unsafe.update(lines_of(np.flatnonzero(arr >= 128), nl).tolist())
        if b"\\u" in blk:
            unsafe.update(lines_of(np.flatnonzero((arr[:-1] == 92) & (arr[1:] == 117)), nl).tolist())
        if self.pf.always:
            hit = set(range(len(nl)))
        else:
            view = Prefilter.json_view(blk)
            pos = self.pf.positions(view)
            vnl = np.flatnonzero(np.frombuffer(view, np.uint8) == 10) if len(pos) else nl
            hit = set(lines_of(pos, vnl).tolist()) if len(pos) else set()
        items = []
        for i in sorted((hit | unsafe | forced) - blank):
            if i not in texts:
                texts[i] = self._parse(blk[starts[i] : nl[i]], shard, int(nums[i]))[1]
            items.append((i, texts[i], i in unsafe or i in forced))

        def text_of(i: int) -> str:
            if i not in texts:
                texts[i] = self._parse(blk[starts[i] : nl[i]], shard, int(nums[i]))[1]
            return texts[i]

        self.bytes += len(blk)
        self._finish(si, base, nums, text_of, items, blank, shard, off + starts)
        return len(nl)

    def _columns(self, shard: Shard, si: int, base: int, batch, row0: int) -> None:
        import pyarrow as pa

        nums = shard.first + row0 + np.arange(batch.num_rows)
        tf = self.text_field
        if tf not in batch.schema.names:  # pairs (or nothing): read every row as the trainer does
            rows = batch.to_pylist()
            texts = {
                i: record_text(r, tf, self._where(shard, int(nums[i])), self.render)
                for i, r in enumerate(rows)
            }
            self.bytes += sum(len(t.encode("utf-8", "surrogatepass")) for t in texts.values())
            items = [(i, t, True) for i, t in texts.items()]
            self._finish(si, base, nums, texts, items, set(), shard, row0 + np.arange(len(nums)))
            return
        col = batch.column(tf)
        if pa.types.is_string_view(col.type) or pa.types.is_large_string(col.type):
            col = col.cast(pa.large_string())
        elif not pa.types.is_string(col.type):
            raise UsageError(
                f"--data {shard.url}: column {tf!r} is {col.type}, not text: pass --text_field NAME"
            )
        if col.null_count:
            i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise UsageError(f"{self._where(shard, int(nums[i]))}: {tf!r} is null")
        bufs = col.buffers()
        offs = np.frombuffer(bufs[1], np.int64 if pa.types.is_large_string(col.type) else np.int32)
        offs = offs[col.offset : col.offset + len(col) + 1].astype(np.int64)
        data = bytes(memoryview(bufs[2])[offs[0] : offs[-1]]) if bufs[2] is not None else b""
        starts, ends = offs[:-1] - offs[0], offs[1:] - offs[0]
        texts: dict[int, str] = {}

        def text_of(i: int) -> str:
            if i not in texts:
                texts[i] = data[starts[i] : ends[i]].decode("utf-8", "surrogatepass")
            return texts[i]

        unsafe = (
            set()
            if data.isascii()
            else set(records_of(np.flatnonzero(np.frombuffer(data, np.uint8) >= 128), starts).tolist())
        )
        if self.pf.always:
            hit = set(range(len(starts)))
        else:
            # One newline between records so no anchor spans two of them (anchors hold none).
            joined = np.insert(np.frombuffer(data, np.uint8), starts[1:], 10).tobytes()
            pos = self.pf.positions(Prefilter.raw_view(joined))
            jstarts = starts + np.arange(len(starts))
            hit = (
                set(records_of(pos, Prefilter.raw_view_starts(joined, jstarts)).tolist())
                if len(pos)
                else set()
            )
        items = [(i, text_of(i), i in unsafe) for i in sorted(hit | unsafe)]
        self.bytes += len(data)
        self._finish(si, base, nums, text_of, items, set(), shard, row0 + np.arange(len(nums)))

    # -- matching and sampling --------------------------------------------------------------
    def _finish(self, si, base, nums, text_of, items, blank, shard, offsets) -> None:
        """Match the kept ``items`` ``(index, text, check)`` (``check``: decoded text, look for
        an anchor in its view first), record the located ones, update the samples."""
        get = text_of.__getitem__ if isinstance(text_of, dict) else text_of
        batch = []
        for i, text, check in items:
            t = text.replace("\x00", " ") if "\x00" in text else text
            norm, s, e = normalise_with_map(t)
            low = norm.lower()
            same = len(low) == len(norm)
            if check and same and not self.pf.always and (self.work is None or t.isascii()):
                if not len(self.pf.positions(Prefilter.text_view(low))):
                    continue
            batch.append((i, text, norm, s, e, same))
        self.kept += len(batch)
        hits, neigh = {}, []
        for k in range(0, len(batch), CHUNK):
            h, n = self._match(batch[k : k + CHUNK])
            hits.update(h)
            neigh += n
        rid = (lambda i: shard.prefix) if shard.fmt == "txt" else (lambda i: f"{shard.prefix}:{int(nums[i])}")
        for i, text, *_ in batch:
            if i in hits:
                rec = Located(rid(i), text, sorted(hits[i], key=lambda h: (h.start, h.end)))
                self.located.append((si, int(nums[i]), int(offsets[i]), rec))
        keys = record_keys(base, nums)
        ok = np.ones(len(nums), bool)
        ok[[*blank, *hits]] = False
        self.n_records += len(nums) - len(blank)
        thr = self.retain.threshold()
        sel = np.flatnonzero(ok & (keys < np.uint64(thr))) if thr < _FULL else np.flatnonzero(ok)
        if len(sel) > self.retain_size:
            sel = sel[np.argpartition(keys[sel], self.retain_size)[: self.retain_size]]
        for i in sel.tolist():
            self.retain.offer(int(keys[i]), rid(i), get(i))
        for i in neigh:
            if i not in hits:
                self.neigh.offer(int(keys[i]), rid(i), get(i))

    def _match(self, batch: list) -> tuple[dict[int, list[Hit]], list[int]]:
        hits: dict[int, list[Hit]] = {}

        def add(b, a: int, z: int, typ: str, req: int, ident: int) -> None:
            _, _, _, starts, ends, _ = b
            if starts is not None:
                a, z = starts[a], ends[z - 1]
            hits.setdefault(b[0], []).append(Hit(a, z, typ, req, ident))

        if self.matcher is not None:
            # Records whose lower-casing keeps their length share one chunk (patterns on the
            # lower-cased text); the rare others run alone (re.IGNORECASE), so what a record
            # matches never depends on its neighbours in the chunk.
            same = [b for b in batch if b[5]]
            chunk = "\x00".join(b[2] for b in same)
            offsets, pos = [], 0
            for b in same:
                offsets.append(pos)
                pos += len(b[2]) + 1
            for s, e, ident in self.matcher.finditer(chunk) if same else ():
                k = bisect.bisect_right(offsets, s) - 1
                add(same[k], s - offsets[k], e - offsets[k], ident.type, ident.req, self.index[ident.group])
            for b in batch:
                if not b[5]:
                    for s, e, ident in self.matcher.finditer(b[2]):
                        add(b, s, e, ident.type, ident.req, self.index[ident.group])
        for b in batch:
            # Exact n-gram and near-duplicate regions of one work are one set of regions: a
            # verbatim copy found both ways is one hit per region, not two.
            regions: dict[int, list[tuple[int, int]]] = {}
            for finder in (self.work, self.near):
                for a, z, ri in finder.find(b[2]) if finder is not None else ():
                    regions.setdefault(ri, []).append((a, z))
            for ri, spans in regions.items():
                for a, z in merge_spans(spans):
                    add(b, a, z, "work", ri, -1)
        neigh = []
        if self.neighbour_pat is not None:
            neigh = [b[0] for b in batch if b[0] not in hits and self.neighbour_pat.search(b[2])]
        return hits, neigh

    # -- output ------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """The state as plain data (a task's output; record texts included, identifier values
        only inside them): located records with shard, number, offset, spans and type counts."""
        located = []
        for si, n, off, r in self.located:
            counts: dict[str, int] = {}
            for h in r.hits:
                counts[h.type] = counts.get(h.type, 0) + 1
            located.append(
                {
                    "shard": si,
                    "n": n,
                    "offset": off,
                    "rid": r.rid,
                    "text": r.text,
                    "counts": counts,
                    "hits": [[h.start, h.end, h.type, h.req, h.ident] for h in r.hits],
                }  # fmt: skip
            )
        return {
            "n_records": self.n_records,
            "bytes": self.bytes,
            "kept": self.kept,
            "located": located,
            "retain": self.retain.items(),
            "neighbours": self.neigh.items(),
        }


def merge(snapshots: list[dict], requests: list[Request], scanner: Scanner) -> LocateResult:
    """One :class:`LocateResult` from any number of snapshots (tasks): located records in plan
    order, the k smallest keys of the samples."""
    located = sorted((r for s in snapshots for r in s["located"]), key=lambda r: (r["shard"], r["n"]))
    res = LocateResult(requests, scanner.idents, [], [], [], work_ngram=scanner.work_ngram)
    for r in located:
        res.located.append(Located(r["rid"], r["text"], [Hit(*h) for h in r["hits"]]))
    for name, k in (("retain", scanner.retain_size), ("neighbours", scanner.neighbour_size)):
        top = sorted(tuple(e) for s in snapshots for e in s[name])[:k]
        setattr(res, name, [(rid, text) for _, rid, text in top])
    res.n_records = sum(s["n_records"] for s in snapshots)
    res.extra = {
        "bytes": sum(s["bytes"] for s in snapshots),
        "kept": sum(s["kept"] for s in snapshots),
        "prefilter": "off" if scanner.pf.always else (scanner.pf.engine or "ahocorasick-rs/re"),
    }
    return res
