"""Locate: stream the training data once and find every record holding a request's identifiers.

TRAIN is a JSONL file (``--text_field``, default ``text``; ``prompt``/``target`` and
``question``/``answer`` pairs are read as one text, as the trainer reads them), a directory of
``.txt`` (one record per file) and ``.jsonl`` files, or a ``datasets`` dataset saved with
``save_to_disk``. Records are matched in chunks: a few thousand NFKC-normalised records are
joined with NUL (which no pattern can match across) and each type's pattern scans the chunk in
C, so the per-record Python cost is one normalisation check. Memory holds one chunk, the
located records, a bounded retain reservoir and a bounded neighbour reservoir: flat in the
corpus size.

``kind: work``: a record is located when it shares a word n-gram of :data:`WORK_NGRAM` words
with a taken-down document; the shared regions are its spans.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from genforget.config import UsageError
from genforget.requests.match import Identifier, Matcher, merge_spans, nfkc, normalise_with_map
from genforget.requests.request import Request

Render = Callable[[list], str]  # a chat's messages -> the text the model was trained on

# 8 words: shorter runs ("one of the most important parts of") recur across unrelated English
# texts, so 5-6-grams flag innocent records; a copied passage shares a run of 8 words unless it
# was edited more often than every 8th word. (GPT-3's contamination check used 13-grams on
# whole benchmarks; takedowns also concern short excerpts, which 13 would miss.)
WORK_NGRAM = 8
CHUNK = 4096
_WORD = re.compile(r"\w+")


def record_text(obj: object, text_field: str, where: str, render: Render | None = None) -> str:
    """The text of one record: ``text_field``, else a prompt/target or question/answer pair, else
    a chat (``messages``) as ``render`` (the model's chat template) writes it."""
    if isinstance(obj, dict):
        v = obj.get(text_field)
        if isinstance(v, str):
            return v
        if isinstance(obj.get("messages"), list):
            if render is None:
                raise UsageError(f"{where}: a chat record ('messages') needs the model's chat template")
            try:
                return render(obj["messages"])
            except (ValueError, TypeError) as e:
                raise UsageError(f"{where}: {e}") from e
        for p, t in (("prompt", "target"), ("question", "answer")):
            if isinstance(obj.get(p), str) and isinstance(obj.get(t), str):
                from genforget.lm.data import normalise_example

                return normalise_example({p: obj[p], t: obj[t]})["text"]
        keys = sorted(obj)[:8]
    else:
        keys = type(obj).__name__
    raise UsageError(
        f"{where}: no string field {text_field!r} (nor a prompt/target or question/answer pair); "
        f"the record has {keys}: pass --text_field NAME"
    )


def _jsonl(
    path: Path, rid_prefix: str, text_field: str, render: Render | None = None
) -> Iterator[tuple[str, str]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"--data {path}:{n}: not valid JSON ({e.msg})") from e
            yield f"{rid_prefix}:{n}", record_text(obj, text_field, f"--data {path}:{n}", render)


def iter_records(
    data: str | Path, text_field: str = "text", render: Render | None = None
) -> Iterator[tuple[str, str]]:
    """``(record id, text)`` for every record of TRAIN, streamed (chats rendered by ``render``)."""
    path = Path(data)
    if path.is_file():
        yield from _jsonl(path, path.name, text_field, render)
        return
    if not path.is_dir():
        raise UsageError(
            f"--data: not found: {path} (a JSONL file, a dir of .txt/.jsonl, or a saved dataset)"
        )
    if any((path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json", "state.json")):
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(path))
        splits = ds.items() if isinstance(ds, DatasetDict) else [("train", ds)]
        for split, d in splits:
            for i, row in enumerate(d):
                yield f"{split}:{i}", record_text(row, text_field, f"--data {path} {split}[{i}]", render)
        return
    files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())
    if not files:
        raise UsageError(f"--data {path}: no .txt or .jsonl files in this directory")
    for f in files:
        rel = f.relative_to(path).as_posix()
        if f.suffix == ".txt":
            yield rel, f.read_text(encoding="utf-8", errors="replace")
        else:
            yield from _jsonl(f, rel, text_field, render)


@dataclass
class Hit:
    """One occurrence: ``(start, end)`` in the record's original text, its type and owner."""

    start: int
    end: int
    type: str
    req: int
    ident: int  # index into LocateResult.identifiers (-1 for a work region)


@dataclass
class Located:
    rid: str
    text: str
    hits: list[Hit]

    def spans(self, req: int | None = None) -> list[tuple[int, int]]:
        return merge_spans([(h.start, h.end) for h in self.hits if req is None or h.req == req])

    def requests(self) -> set[int]:
        return {h.req for h in self.hits}


@dataclass
class LocateResult:
    requests: list[Request]
    identifiers: list[Identifier]
    located: list[Located]
    retain: list[tuple[str, str]]  # (rid, text): a seeded sample of records holding no identifier
    neighbours: list[tuple[str, str]]  # records naming a person's surname / street, no identifier
    n_records: int = 0
    seconds: float = 0.0
    work_ngram: int = WORK_NGRAM
    extra: dict = field(default_factory=dict)

    def for_request(self, req: int) -> list[Located]:
        return [r for r in self.located if req in r.requests()]

    def counts(self, req: int) -> dict:
        """Records and occurrences per identifier type for one request: numbers only."""
        recs = self.for_request(req)
        occ: dict[str, int] = {}
        rec_by_type: dict[str, set] = {}
        for r in recs:
            for h in r.hits:
                if h.req == req:
                    occ[h.type] = occ.get(h.type, 0) + 1
                    rec_by_type.setdefault(h.type, set()).add(r.rid)
        return {
            "records": len(recs),
            "occurrences": dict(sorted(occ.items())),
            "records_by_type": {k: len(v) for k, v in sorted(rec_by_type.items())},
        }


def _neighbour_terms(requests: list[Request]) -> list[str]:
    """Surnames of the named people and the streets of their addresses (the employer is not in a
    request, so it is not searched): records naming them hold the people most at risk of
    collateral forgetting."""
    terms = []
    for r in requests:
        for name in r.identifiers.get("name", []):
            words = nfkc(name).replace(",", " ").split()
            if len(words) > 1 and len(words[-1]) > 2:
                terms.append(re.escape(words[-1]))
        for addr in r.identifiers.get("address", []):
            street = [w for w in nfkc(addr).split(",")[0].split() if not any(c.isdigit() for c in w)]
            if street:
                terms.append(r"\s+".join(re.escape(w) for w in street))
    return list(dict.fromkeys(terms))


class _WorkIndex:
    def __init__(self, requests: list[Request], n: int) -> None:
        self.n = n
        self.grams: dict[int, set[int]] = {}  # gram hash -> requests holding it
        for ri, r in enumerate(requests):
            for doc in r.documents:
                words = [w.casefold() for w in _WORD.findall(nfkc(doc))]
                for i in range(len(words) - n + 1):
                    self.grams.setdefault(hash(tuple(words[i : i + n])), set()).add(ri)
        self.vocab = {w for r in requests for d in r.documents for w in _WORD.findall(nfkc(d).casefold())}

    def find(self, norm: str) -> list[tuple[int, int, int]]:
        ms = list(_WORD.finditer(norm))
        words = [m.group().casefold() for m in ms]
        if sum(w in self.vocab for w in words) < self.n:
            return []
        marked: dict[int, list[int]] = {}
        for i in range(len(words) - self.n + 1):
            for ri in self.grams.get(hash(tuple(words[i : i + self.n])), ()):
                marked.setdefault(ri, []).append(i)
        out = []
        for ri, starts in marked.items():
            spans = [(ms[i].start(), ms[i + self.n - 1].end()) for i in starts]
            out.extend((a, b, ri) for a, b in merge_spans(spans))
        return out


def locate(
    requests: list[Request],
    data: str | Path,
    text_field: str = "text",
    retain_size: int = 256,
    neighbour_size: int = 64,
    seed: int = 0,
    work_ngram: int = WORK_NGRAM,
    render: Render | None = None,
) -> LocateResult:
    """One pass over ``data``: every record holding any identifier of any request, with spans.
    ``render``: how a chat record (``messages``) reads as text, the model's chat template."""
    t0 = time.perf_counter()
    idents = [
        Identifier(ri, typ, k, v)
        for ri, r in enumerate(requests)
        for typ, vals in r.identifiers.items()
        for k, v in enumerate(vals)
    ]
    try:
        matcher = Matcher(idents, {ri: r.region for ri, r in enumerate(requests)}) if idents else None
    except (ValueError, ImportError) as e:
        raise UsageError(f"identifiers: {e}") from e
    index = {i.group: n for n, i in enumerate(idents)}
    work = _WorkIndex(requests, work_ngram) if any(r.documents for r in requests) else None
    terms = _neighbour_terms(requests)
    neighbour_pat = re.compile(rf"(?<!\w)(?:{'|'.join(terms)})(?!\w)") if terms else None
    rng = random.Random(seed)
    res = LocateResult(requests, idents, [], [], [], work_ngram=work_ngram)
    seen_clean = seen_neigh = 0

    def flush(batch: list[tuple[str, str]]) -> None:
        nonlocal seen_clean, seen_neigh
        norms = [normalise_with_map(t.replace("\x00", " ")) for _, t in batch]
        chunk = "\x00".join(n for n, _, _ in norms)
        offsets, pos = [], 0
        for n, _, _ in norms:
            offsets.append(pos)
            pos += len(n) + 1
        hits: dict[int, list[Hit]] = {}

        def add(k: int, a: int, b: int, typ: str, req: int, ident: int) -> None:
            _, starts, ends = norms[k]
            if starts is not None:
                a, b = starts[a], ends[b - 1]
            hits.setdefault(k, []).append(Hit(a, b, typ, req, ident))

        if matcher is not None:
            for s, e, ident in matcher.finditer(chunk):
                k = bisect.bisect_right(offsets, s) - 1
                add(k, s - offsets[k], e - offsets[k], ident.type, ident.req, index[ident.group])
        if work is not None:
            for k, (n, _, _) in enumerate(norms):
                for a, b, ri in work.find(n):
                    add(k, a, b, "work", ri, -1)
        neigh = set()
        if neighbour_pat is not None:
            neigh = {bisect.bisect_right(offsets, m.start()) - 1 for m in neighbour_pat.finditer(chunk)}
        for k, (rid, text) in enumerate(batch):
            if k in hits:
                res.located.append(Located(rid, text, sorted(hits[k], key=lambda h: (h.start, h.end))))
                continue
            # Reservoir samples (Vitter's algorithm R): seeded, uniform, bounded memory.
            seen_clean += 1
            if len(res.retain) < retain_size:
                res.retain.append((rid, text))
            elif (j := rng.randrange(seen_clean)) < retain_size:
                res.retain[j] = (rid, text)
            if k in neigh:
                seen_neigh += 1
                if len(res.neighbours) < neighbour_size:
                    res.neighbours.append((rid, text))
                elif (j := rng.randrange(seen_neigh)) < neighbour_size:
                    res.neighbours[j] = (rid, text)

    batch: list[tuple[str, str]] = []
    for rec in iter_records(data, text_field, render):
        batch.append(rec)
        res.n_records += 1
        if len(batch) >= CHUNK:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    res.seconds = time.perf_counter() - t0
    return res
