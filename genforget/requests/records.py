"""What locate finds and how a record reads: the result types, a record's text, the neighbour
terms and the exact word n-gram index of ``kind: work`` requests.

``kind: work``: a record is located when it shares a word n-gram of :data:`WORK_NGRAM` words
with a taken-down document (the shared regions are its spans), or when a window of it is a near
duplicate of one (:mod:`genforget.requests.neardup`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genforget.config import UsageError
from genforget.requests.match import Identifier, best_anchor, merge_spans, nfkc
from genforget.requests.neardup import THRESHOLD

if TYPE_CHECKING:  # annotations only: request.py imports association.py, which reads records
    from genforget.requests.request import Request

# 8 words: shorter runs ("one of the most important parts of") recur across unrelated English
# texts, so 5-6-grams flag innocent records; a copied passage shares a run of 8 words unless it
# was edited more often than every 8th word (near-duplicate matching covers those). (GPT-3's
# contamination check used 13-grams on whole benchmarks; takedowns also concern short excerpts,
# which 13 would miss.)
WORK_NGRAM = 8
Render = Callable[[list], str]  # a chat's messages -> the text the model was trained on
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ScanOptions:
    """How a locate scan reads records and samples the clean ones: the keyword options of
    :func:`~genforget.requests.locate` and :func:`~genforget.requests.scale.locate_distributed`.

    ``near_dup``: the bigram Jaccard at which a window of a record is a near duplicate of a
    ``kind: work`` document (0 = exact n-grams only); ``prefilter=False`` runs the exact matcher
    on every record; ``render``: how a chat record (``messages``) reads as text, the model's chat
    template."""

    text_field: str = "text"
    retain_size: int = 256
    neighbour_size: int = 64
    seed: int = 0
    work_ngram: int = WORK_NGRAM
    near_dup: float = THRESHOLD
    prefilter: bool = True
    render: Render | None = None


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


def neighbour_terms(requests: list[Request]) -> list[list[str]]:
    """Surnames of the named people and the streets of their addresses (the employer is not in a
    request, so it is not searched), each as its words: records naming them hold the people most
    at risk of collateral forgetting."""
    terms = []
    for r in requests:
        for name in r.identifiers.get("name", []):
            words = nfkc(name).replace(",", " ").split()
            if len(words) > 1 and len(words[-1]) > 2:
                terms.append((words[-1],))
        for addr in r.identifiers.get("address", []):
            street = [w for w in nfkc(addr).split(",")[0].split() if not any(c.isdigit() for c in w)]
            if street:
                terms.append(tuple(street))
    return [list(t) for t in dict.fromkeys(terms)]


def neighbour_pattern(terms: list[list[str]]) -> re.Pattern | None:
    """Case-sensitive, whole words, any whitespace between a street's words."""
    alts = [r"\s+".join(re.escape(w) for w in t) for t in terms]
    return re.compile(rf"(?<!\w)(?:{'|'.join(alts)})(?!\w)") if alts else None


class WorkIndex:
    """Every word n-gram of the documents of ``kind: work`` requests. Keys are the n-gram's
    words joined (not ``hash()``: a worker process has another hash seed)."""

    def __init__(self, requests: list[Request], n: int) -> None:
        self.n = n
        self.grams: dict[str, set[int]] = {}  # n-gram -> requests holding it
        for ri, r in enumerate(requests):
            for doc in r.documents:
                words = [w.casefold() for w in _WORD.findall(nfkc(doc))]
                for i in range(len(words) - n + 1):
                    self.grams.setdefault(" ".join(words[i : i + n]), set()).add(ri)
        self.vocab = {w for r in requests for d in r.documents for w in _WORD.findall(nfkc(d).casefold())}

    def anchors(self) -> list[str]:
        """The longest word of each n-gram. An n-gram holding a non-ASCII word can only occur in a
        non-ASCII record, which the scan always decodes and checks: it needs no anchor."""
        out = set()
        for gram in self.grams:
            words = gram.split(" ")
            if all(w.isascii() for w in words):
                out.add(best_anchor([max(words, key=len)]))
        return sorted(a for a in out if a)

    def find(self, norm: str) -> list[tuple[int, int, int]]:
        ms = list(_WORD.finditer(norm))
        words = [m.group().casefold() for m in ms]
        if sum(w in self.vocab for w in words) < self.n:
            return []
        marked: dict[int, list[int]] = {}
        for i in range(len(words) - self.n + 1):
            for ri in self.grams.get(" ".join(words[i : i + self.n]), ()):
                marked.setdefault(ri, []).append(i)
        out = []
        for ri, starts in marked.items():
            spans = [(ms[i].start(), ms[i + self.n - 1].end()) for i in starts]
            out.extend((a, b, ri) for a, b in merge_spans(spans))
        return out


def windows(ex: dict, max_chars: int = 800, context: int = 200) -> list[dict]:
    """``{"text", "spans"}`` cut into windows of at most ~``max_chars`` around its spans.

    A long record (a whole .txt document) would be truncated to ``max_length`` tokens by the
    trainer, losing the occurrences past the cut (and failing when none is left); windows keep
    ``context`` characters either side of each group of occurrences instead.
    """
    text, spans = ex["text"], sorted(ex["spans"])
    if len(text) <= max_chars or not spans:
        return [ex]
    groups: list[list[tuple[int, int]]] = []
    for a, b in spans:
        if groups and b - groups[-1][0][0] <= max_chars - 2 * context:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    out = []
    for g in groups:
        ws, we = max(0, g[0][0] - context), min(len(text), max(b for _, b in g) + context)
        out.append({"text": text[ws:we], "spans": [(a - ws, b - ws) for a, b in g]})
    return out
