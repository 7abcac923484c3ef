"""The locate prefilter never drops a true match, and near-duplicate copies of a work are found.

Every check compares the scan with the prefilter on against the same scan with it off (every
record decoded and run through the exact matcher): same located records, spans, counts, retain
and neighbour samples, over adversarial spellings in every container the scan reads.
"""

from __future__ import annotations

import gzip
import json
import random
import sys

import pytest

from genforget.requests import locate, parse_request
from genforget.requests.match import Identifier, Matcher, identifier_anchor, nfkc, view_of

IDS = {
    "name": ["Jane Roe", "José Ñuñez", "Kim Lee"],
    "email": ["jane.roe@example.org"],
    "phone": ["+1 (555) 010-0199"],
    "iban": ["GB82 WEST 1234 5698 7654 32"],
    "id_number": ["T-1234567"],
    "address": ["17 Larkspur Terrace, Dunmore"],
    "other": ['say "hello world"'],
}
# Each holds an identifier in a form the patterns forgive; the prefilter must keep every one.
POSITIVES = [
    "call 555.010.0199 now", "555\t010\t0199", "555/010/0199", "(555) 010-0199", "+1-555-010-0199",
    "５５５-０１０-０１９９", "555\u00a0010\u00a00199", "555\x00010\x000199", "JANE ROE", "Jane\n   Roe",
    "Roe, Jane Q.", "JANE\u00a0ROE", "Ｊａｎｅ Ｒｏｅ", "Jose\u0301 N\u0303un\u0303ez", "JOSÉ ÑUÑEZ",
    "\u212aim Lee wrote", "Jane.Roe@Example.ORG", "gb82 west 1234 5698 7654 32", "a\\T1234567 b",
    "t 1234567", "17 Larkspur   Terrace, Dunmore", 'she would say "hello world" twice',
    "ＧＢ８２ＷＥＳＴ１２３４５６９８７６５４３２",
]  # fmt: skip
NEGATIVES = [
    "Mr Roe went home",
    "Jane Roeper",
    "555-010-0198",
    "Larkspur Terrace",
    "Janet Roe",
    "TİM LEE",
    "",
]


def _write(tmp_path, texts: list[str]):
    """The texts in every container: JSONL (ASCII-escaped, raw UTF-8 with the text key last,
    ``\\/``-escaped and gzipped), parquet, .txt files, and prompt/target (JSONL) and
    question/answer (parquet) pairs cut mid-identifier."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (d / "b.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    )
    escaped = "".join(json.dumps({"text": t}).replace("/", "\\/") + "\n\n" for t in texts)
    (d / "c.jsonl.gz").write_bytes(gzip.compress(escaped.encode()))
    pq.write_table(pa.table({"text": texts}), d / "d.parquet")
    (d / "e").mkdir()
    for i, t in enumerate(texts):
        (d / "e" / f"{i}.txt").write_text(t)
    pairs = [{"prompt": t[: len(t) // 2], "target": t[len(t) // 2 :]} for t in texts]
    (d / "f.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    qa = {"question": [p["prompt"] for p in pairs], "answer": [p["target"] for p in pairs]}
    pq.write_table(pa.table(qa), d / "g.parquet")  # no text column: read as pairs
    return d


def _summary(res) -> tuple:
    return (
        [(r.rid, [(h.start, h.end, h.type, h.req, h.ident) for h in r.hits]) for r in res.located],
        [rid for rid, _ in res.retain],
        [rid for rid, _ in res.neighbours],
        res.n_records,
    )


def _req():
    return [parse_request({"id": "R", "identifiers": IDS})]


def test_anchors_are_in_the_view_of_every_match():
    """Unit level: wherever the exact matcher matches, the identifier's anchor is in the view."""
    idents = [Identifier(0, t, k, v) for t, vals in IDS.items() for k, v in enumerate(vals)]
    m = Matcher(idents)
    n = 0
    for t in POSITIVES:
        norm = nfkc(t.replace("\x00", " "))
        for _, _, ident in m.finditer(norm):
            assert identifier_anchor(ident) in view_of(norm.lower()), (t, ident.type)
            n += 1
    assert n >= len(POSITIVES)


def test_prefilter_keeps_every_match_in_every_container(tmp_path):
    d = _write(tmp_path, POSITIVES + NEGATIVES)
    on, off = locate(_req(), d, retain_size=8), locate(_req(), d, retain_size=8, prefilter=False)
    assert _summary(on) == _summary(off)
    assert on.extra["kept"] < off.extra["kept"]  # it did filter
    per = {}
    for r in on.located:
        per.setdefault(r.rid.split(":")[0].split("/")[0], set()).add(r.rid)
    for container in ("a.jsonl", "b.jsonl", "c.jsonl.gz", "d.parquet"):  # every positive, no negative
        assert len(per[container]) == len(POSITIVES), container
    assert len(per["e"]) == len(POSITIVES)
    assert {r.rid for r in on.located if r.rid.startswith("a.jsonl")} == {
        f"a.jsonl:{i + 1}" for i in range(len(POSITIVES))
    }
    terms = ("Roe", "Larkspur Terrace", "Lee", "Ñuñez")  # surnames and the street
    assert on.neighbours and all(any(w in t for w in terms) for _, t in on.neighbours)


BASES = ["Jane Roe", "Roe, Jane Q.", "José Ñuñez", "Kim Lee", "jane.roe@example.org", "5550100199",
         "+1 555 010 0199", "GB82WEST12345698765432", "T1234567", "17 Larkspur Terrace, Dunmore",
         'say "hello world"']  # fmt: skip
JUNK = [" ", "\t", ".", "-", "(", ")", "/", "\\", '"', "\n", "\u00a0", "  ", "\x00", ",", "_", "0"]


def _mutant(rng: random.Random) -> str:
    """An identifier with characters dropped, re-cased, made full-width or accented, and
    separators, escapes and look-alikes inserted: some still match, some no longer do."""
    out = []
    for c in rng.choice(BASES):
        r = rng.random()
        if r < 0.01:
            continue
        if r < 0.06:
            c = c.swapcase()
        elif r < 0.08 and c.isdigit():
            c = chr(ord(c) - 48 + 0xFF10)
        elif r < 0.09 and c.isalpha():
            c += "\u0301"
        out.append(c)
        if rng.random() < 0.05:
            out.append(rng.choice(JUNK))
    noise = ["", "x", "1", "a ", " the ", "İ", "\u212a", "@", "\\t", "/", "Mr Roe "]
    return rng.choice(noise) + "".join(out) + rng.choice(noise)


def test_prefilter_fuzz_and_fallback_engines(tmp_path, monkeypatch):
    """Mutated identifiers (dropped characters, case, separators, JSON-escaped and
    Unicode look-alikes: prefilter on == off, with the Rust automaton and with the ``re`` and
    ``json`` fallbacks of a plain install."""
    rng = random.Random(0)
    texts = [_mutant(rng) for _ in range(1500)]
    d = _write(tmp_path, texts)
    ref = _summary(locate(_req(), d, retain_size=16, prefilter=False))
    assert len(ref[0]) > 7 * 1500 * 0.2  # the mutants do match, often but not always
    assert len(ref[0]) < 7 * 1500 * 0.9
    assert _summary(locate(_req(), d, retain_size=16)) == ref
    import genforget.requests.scan as scan

    monkeypatch.setitem(sys.modules, "ahocorasick_rs", None)
    monkeypatch.setattr(scan, "_loads", json.loads)
    monkeypatch.setattr(scan, "_JSONError", json.JSONDecodeError)
    res = locate(_req(), d, retain_size=16)
    assert res.extra["prefilter"] == "re" and _summary(res) == ref


WORK = (
    "The lighthouse keeper of Marrow Point kept a ledger of every ship that passed the headland, "
    "writing the names in violet ink because the harbour master had once told him that black ink "
    "faded in salt air. Each winter the ledger grew heavier, and each spring he carried it down the "
    "cliff path to the village archive, where a clerk with silver spectacles copied the entries into "
    "a second book that nobody ever read. The keeper did not mind; he believed that a ship remembered "
    "was a ship that could still come home, and so he counted masts through fog and storm alike, "
    "trusting the lamp to guide whatever the sea returned. When the railway reached the coast the "
    "ships grew fewer, yet he kept the ledger open on the oak desk beside the window, a pencil "
    "balanced on its spine, waiting for sails that appeared less often with every passing season."
)
UNRELATED = (
    "Quarterly revenue rose four percent as the company expanded its cloud storage division, while "
    "analysts cautioned that rising interest rates could slow enterprise spending on new hardware "
    "during the second half of the fiscal year, particularly among mid-sized retailers in Europe."
)


def _edited(text: str) -> str:
    """Every 5th word changed, different quotes, reflowed lines: no run of 8 words survives."""
    words = text.split()
    subs = ["crimson", "quietly", "seven", "borrowed", "northern", "paper", "distant", "iron"]
    out = [subs[i % len(subs)] if i % 5 == 4 else w for i, w in enumerate(words)]
    out[3] = "“" + out[3] + "”"
    return "\n".join(" ".join(out[i : i + 7]) for i in range(0, len(out), 7))


def test_near_duplicate_work_copies_are_located(tmp_path):
    (tmp_path / "work.txt").write_text(WORK)
    words = WORK.split()
    shuffled = " ".join(random.Random(1).sample(words, len(words)))  # same words, no bigram order
    excerpt = "Intro: " + " ".join(words[20:32]) + " -- end."
    texts = [_edited(WORK), UNRELATED, shuffled, excerpt, _edited(UNRELATED)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    req = parse_request({"id": "W", "kind": "work", "documents": ["work.txt"]}, base_dir=tmp_path)
    res = locate([req], data)
    assert [r.rid for r in res.located] == ["d.jsonl:1", "d.jsonl:4"]
    edited = res.located[0]
    covered = sum(b - a for a, b in edited.spans())
    assert covered > 0.9 * len(texts[0]) and {h.type for h in edited.hits} == {"work"}
    # The exact 8-gram check alone misses the edited copy (what near-duplicate matching adds).
    assert [r.rid for r in locate([req], data, near_dup=0).located] == ["d.jsonl:4"]
    assert _summary(locate([req], data, prefilter=False)) == _summary(res)


def test_near_duplicate_of_a_short_edited_excerpt(tmp_path):
    """A 40-word excerpt edited every 5th word, inside unrelated text, is still found; its span
    stays around the excerpt."""
    (tmp_path / "work.txt").write_text(WORK)
    part = _edited(" ".join(WORK.split()[40:80])).replace("\n", " ")
    rec = UNRELATED + " " + part + " " + UNRELATED
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": rec}) + "\n")
    req = parse_request({"id": "W", "kind": "work", "documents": ["work.txt"]}, base_dir=tmp_path)
    (r,) = locate([req], data).located
    (a, b), *_ = r.spans()
    assert a >= len(UNRELATED) - 120 and b <= len(UNRELATED) + len(part) + 120
    assert rec.index(part) < b and a < rec.index(part) + len(part)


@pytest.mark.parametrize("bad", ['{"text": "Jane Roe", ', '{"body": "Jane Roe"}'])
def test_kept_malformed_record_is_an_error_naming_the_line(tmp_path, bad):
    from genforget.config import UsageError

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "fine"}) + "\n" + bad + "\n")
    with pytest.raises(UsageError, match=r"d.jsonl:2: (not valid JSON|no string field)"):
        locate(_req(), data)


def test_an_identifier_without_anchor_turns_the_prefilter_off_and_says_so(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in ['he said "" twice', "nothing"]))
    req = [parse_request({"id": "R", "identifiers": {"other": ['""']}})]
    with pytest.warns(UserWarning, match="no literal the byte prefilter can look for"):
        res = locate(req, data)
    assert res.extra["prefilter"] == "off" and [r.rid for r in res.located] == ["d.jsonl:1"]
