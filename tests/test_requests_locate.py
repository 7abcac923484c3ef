"""Deletion requests: request validation, locate normalisation, sources, twins (no model needed
except for the --data check)."""

from __future__ import annotations

import json

import pytest
import yaml

from genforget.cli.main import main
from genforget.config import UsageError
from genforget.data.pii import build_pii_corpus
from genforget.demos.request import demo_records
from genforget.requests import locate, make_twins, parse_request
from genforget.requests.match import normalise_with_map

JANE = {"name": ["Jane Roe"], "email": ["jane.roe@example.org"], "phone": ["+1 (555) 010-0199"]}


def _jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t} if isinstance(t, str) else t) + "\n" for t in texts))
    return path


def _found(tmp_path, texts, identifiers, **kw):
    """{record index: [matched substrings]} for one request over ``texts``."""
    data = _jsonl(tmp_path / "d.jsonl", texts)
    res = locate([parse_request({"id": "R", "identifiers": identifiers})], data, **kw)
    return {int(r.rid.split(":")[1]) - 1: [r.text[h.start : h.end] for h in r.hits] for r in res.located}


@pytest.mark.parametrize(
    "doc, problem",
    [
        ({"id": "R", "identifiers": JANE, "colour": "red"}, "unknown key 'colour'"),
        ({"id": "R", "identifiers": {"nmae": ["Jane Roe"]}}, "unknown identifier type 'nmae'"),
        ({"id": "R", "identifiers": {}}, "empty request"),
        ({"id": "R", "identifiers": {"email": []}}, "empty request"),
        ({"id": "R", "kind": "company", "identifiers": JANE}, "'kind' must be one of"),
        ({"id": "R", "kind": "work", "documents": ["missing.txt"]}, "cannot read 'missing.txt'"),
        ({"kind": "person", "identifiers": JANE}, "'id' is required"),
        ("just a string", "a request is a mapping"),
    ],
)
def test_bad_request_exits_2_and_writes_nothing(tmp_path, capsys, doc, problem):
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    rc = main(["forget", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d.jsonl"),
               "--request", str(req), "--output_dir", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and problem in err and "req.yaml" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["req.yaml"]  # no OUT, ledger or key


def test_unparseable_request_names_file_not_content(tmp_path, capsys):
    req = tmp_path / "req.json"
    req.write_text('{"id": "R", "identifiers": {"email": ["jane.roe@example.org"]')
    assert main(["forget", "--request", str(req), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "req.json: not valid JSON" in err and "jane.roe" not in err
    assert not (tmp_path / "o").exists()


def test_bad_data_exits_2_and_writes_nothing(tmp_path, capsys):
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump({"id": "R", "identifiers": JANE}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n')
    model = tmp_path / "model"
    model.mkdir()  # the data is read first; an empty dir then fails to load, also exit 2
    for data, msg in (
        (tmp_path / "nope.jsonl", "not found"),
        (bad, "bad.jsonl:1: no string field 'text'"),
        (_jsonl(tmp_path / "ok.jsonl", ["Jane Roe"]), "--model: "),
    ):
        rc = main(["forget", "--model", str(model), "--data", str(data), "--request", str(req),
                   "--output_dir", str(tmp_path / "out")])  # fmt: skip
        assert rc == 2 and msg in capsys.readouterr().err
    rc = main(["forget", "--model", str(tmp_path / "none"), "--data", str(bad), "--request", str(req),
               "--output_dir", str(tmp_path / "out")])  # fmt: skip
    assert rc == 2 and "not a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "model", "ok.jsonl", "req.yaml"]


def test_phone_formats(tmp_path):
    texts = ["call 555.010.0199 now", "5550100199", "(555) 010-0199", "+1-555-010-0199", "tel 555 010 0199.",
             "555-010-0198", "25550100199", "555-010-01990", "+44 20 7946 0000"]  # fmt: skip
    found = _found(tmp_path, texts, {"phone": ["+1 (555) 010-0199"]})
    assert found == {0: ["555.010.0199"], 1: ["5550100199"], 2: ["(555) 010-0199"], 3: ["+1-555-010-0199"],
                     4: ["555 010 0199"]}  # fmt: skip


def test_name_forms(tmp_path):
    texts = ["Jane Roe wrote", "Roe, Jane asked", "Jane Q. Roe said", "JANE ROE", "Jane\n   Roe", "Roe, Jane Q.",
             "Jane Roeper", "John Roe", "Janet Roe", "Roe Jane"]  # fmt: skip
    found = _found(tmp_path, texts, {"name": ["Jane Roe"]})
    assert found == {0: ["Jane Roe"], 1: ["Roe, Jane"], 2: ["Jane Q. Roe"], 3: ["JANE ROE"], 4: ["Jane\n   Roe"],
                     5: ["Roe, Jane Q."]}  # fmt: skip


def test_email_case_and_boundaries(tmp_path):
    texts = [
        "Mail Jane.Roe@Example.ORG.",
        "xjane.roe@example.org",
        "jane.roe@example.org.uk",
        "<jane.roe@example.org>",
    ]
    found = _found(tmp_path, texts, {"email": ["jane.roe@example.org"]})
    assert found == {0: ["Jane.Roe@Example.ORG"], 3: ["jane.roe@example.org"]}


def test_iban_and_id_spacing(tmp_path):
    texts = ["IBAN GB82WEST12345698765432", "gb82 west 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 33",
             "ID 1234567", "id1234567", "ID-12345678"]  # fmt: skip
    found = _found(tmp_path, texts, {"iban": ["GB82 WEST 1234 5698 7654 32"], "id_number": ["ID-1234567"]})
    assert found == {0: ["GB82WEST12345698765432"], 1: ["gb82 west 1234 5698 7654 32"], 3: ["ID 1234567"],
                     4: ["id1234567"]}  # fmt: skip


def test_unicode_forms_map_back_to_original_spans(tmp_path):
    decomposed = "Jose\u0301 Nu\u0303n\u0303ez"  # "José Ññez"-style, combining marks
    texts = [f"Dear {decomposed}, call ５５５-０１０-０１９９", "Jose Nunez"]
    found = _found(
        tmp_path,
        texts,
        {"name": ["José Ñuñez".replace("Ñ", "N").replace("uñ", "ũñ")], **{"phone": ["5550100199"]}},
    )
    assert found == {0: [decomposed, "５５５-０１０-０１９９"]}
    norm, starts, ends = normalise_with_map("ｘé")
    assert norm == "xé" and starts == [0, 1] and ends == [1, 2]


def test_locate_precision_recall_on_generated_jsonl(tmp_path):
    corpus = build_pii_corpus(40, 5, 0.1, n_holdout=0, seed=3)
    recs, who = demo_records(corpus)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    people = corpus.persons("forget")[:2]
    reqs = [parse_request({"id": f"R{i}", "identifiers": {"name": [p.name], "email": [p.pii["email"]],
                                                         "phone": [p.pii["phone"]]}}) for i, p in enumerate(people)]  # fmt: skip
    res = locate(reqs, data)
    assert res.n_records == len(recs)
    for i, p in enumerate(people):
        truth = {f"train.jsonl:{k + 1}" for k, w in enumerate(who) if p.pid in w}
        assert {r.rid for r in res.for_request(i)} == truth  # precision and recall 1.0
        c = res.counts(i)
        # bio + 3 QA + contact card + passage; the phone twice (bio, card) plus its QA answer.
        assert c["records"] == 6 and c["occurrences"]["phone"] == 3 and c["occurrences"]["email"] == 3
        assert not any(p.name in json.dumps(c) or p.pii["phone"] in json.dumps(c) for _ in [0])
    assert len(res.retain) == min(256, len(recs) - 12)
    assert not {rid for rid, _ in res.retain} & {r.rid for r in res.located}


def test_sources_dir_and_saved_dataset(tmp_path):
    from datasets import Dataset

    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.txt").write_text("Jane Roe lives here.")
    (d / "sub").mkdir()
    _jsonl(d / "sub" / "b.jsonl", ["nothing", {"question": "Phone of Jane Roe?", "answer": "555.010.0199"}])
    Dataset.from_dict({"body": ["x", "mail JANE.ROE@example.org"]}).save_to_disk(str(tmp_path / "ds"))
    req = [parse_request({"id": "R", "identifiers": JANE})]
    res = locate(req, d)
    assert {r.rid for r in res.located} == {"a.txt", "sub/b.jsonl:2"}
    assert res.counts(0)["occurrences"] == {"name": 2, "phone": 1}
    res = locate(req, tmp_path / "ds", text_field="body")
    assert [r.rid for r in res.located] == ["train:1"] and res.n_records == 2


def test_work_requests_span_shared_ngrams(tmp_path):
    work = "the quick brown fox jumps over the lazy dog while the farmer sleeps under an old oak tree"
    (tmp_path / "work.txt").write_text(work)
    copied = "Intro. The quick brown fox jumps over the LAZY dog while the farmer sleeps. Outro."
    short = "the quick brown fox jumps over"  # 6 shared words: below the 8-gram
    data = _jsonl(tmp_path / "d.jsonl", [copied, short, "unrelated text entirely here"])
    req = parse_request({"id": "W", "kind": "work", "documents": ["work.txt"]}, base_dir=tmp_path)
    res = locate([req], data)
    assert [r.rid for r in res.located] == ["d.jsonl:1"]
    (h,) = res.located[0].hits
    assert copied[h.start : h.end] == "The quick brown fox jumps over the LAZY dog while the farmer sleeps"


def test_twins_keep_shape_and_never_equal_the_original(tmp_path):
    texts = ["Jane Roe's phone is 555-010-0199. Jane Roe moved; call Roe, Jane Q. at (555) 010-0199.",
             "Mail jane.roe@example.org or JANE ROE, ID-1234567."]  # fmt: skip
    ids = {**JANE, "id_number": ["ID-1234567"]}
    data = _jsonl(tmp_path / "d.jsonl", texts)
    req = parse_request({"id": "R", "identifiers": ids})
    res = locate([req], data)
    twins = make_twins(res, seed=0)
    assert twins == make_twins(res, seed=0)  # seeded
    for rec, twin in zip(res.located, twins, strict=True):
        assert twin["text"] != rec.text
        assert len(twin["spans"]) == len(rec.hits)
        for h, (a, b) in zip(rec.hits, twin["spans"], strict=True):
            orig, new = rec.text[h.start : h.end], twin["text"][a:b]
            assert new.casefold() != orig.casefold()
            if h.type in ("phone", "id_number"):  # same shape: digits for digits, the rest kept
                assert len(new) == len(orig)
                assert all(
                    x.isdigit() == y.isdigit() and (x.isdigit() or x == y)
                    for x, y in zip(orig, new, strict=True)
                )
            if h.type == "email":
                assert "@" in new
        assert not locate([req], _jsonl(tmp_path / "t.jsonl", [twin["text"]])).located  # no identifier left
    # One person's name is replaced consistently within a record, in each occurrence's form.
    t0 = twins[0]["text"]
    names = [
        t0[a:b] for (a, b), h in zip(twins[0]["spans"], res.located[0].hits, strict=True) if h.type == "name"
    ]
    first, last = names[0].split()
    assert names[1] == f"{first} {last}" and names[2].startswith(f"{last}, {first} ")
    # Twins are never a forget example: they come back as calibration only (pipeline), never trained.


def test_parse_request_rejects_mixed_kinds():
    with pytest.raises(UsageError, match="kind: work takes 'documents'"):
        parse_request({"id": "W", "kind": "work", "identifiers": JANE})


def test_long_records_are_cut_into_windows_around_occurrences():
    from genforget.requests.pipeline import windows

    text = "Jane Roe. " + "filler words here. " * 200 + "Call Jane Roe at 555-010-0199. " + "more. " * 100
    a, b = text.index("Call Jane") + 5, text.index("Call Jane") + 13
    c = text.index("555-010")
    ex = {"text": text, "spans": [(0, 8), (a, b), (c, c + 12)]}
    out = windows(ex, max_chars=800, context=200)
    assert len(out) == 2
    assert [w["text"][x:y] for w in out for x, y in w["spans"]] == ["Jane Roe", "Jane Roe", "555-010-0199"]
    assert all(len(w["text"]) <= 800 for w in out)
    assert windows({"text": "short Jane Roe", "spans": [(6, 14)]}) == [
        {"text": "short Jane Roe", "spans": [(6, 14)]}
    ]


def test_forget_help_lists_request_and_unlearn_options(capsys):
    # Help strings holding "%" ("min-k %") once made argparse's --help crash.
    with pytest.raises(SystemExit) as e:
        main(["forget", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--request" in out and "--calibration_statistic" in out and "min-k %" in out
