"""The built-in corpus and the loaders (JSONL, TOFU, datasets)."""

from __future__ import annotations

import json

import pytest

from genforget.data import PII_FIELDS, as_examples, build_pii_corpus, from_dataset, load_jsonl, load_tofu
from genforget.data.loaders import load_data_spec


def test_corpus_is_deterministic_and_split(corpus):
    again = build_pii_corpus(n_people=20, n_passages=10, forget_frac=0.2, seed=0)
    assert [p.pii for p in again.people] == [p.pii for p in corpus.people]
    other = build_pii_corpus(n_people=20, n_passages=10, forget_frac=0.2, seed=1)
    assert [p.name for p in other.people] != [p.name for p in corpus.people]
    assert [len(corpus.persons(s)) for s in ("forget", "retain", "holdout")] == [4, 16, 4]
    assert [len(corpus.texts(s)) for s in ("forget", "retain", "holdout")] == [2, 8, 2]
    names = [p.name for p in corpus.people]
    assert len(set(names)) == len(names)


def test_default_corpus_has_10_percent_forget():
    c = build_pii_corpus()
    assert (
        len(c.persons("forget")) == 20 and len(c.persons("retain")) == 180 and len(c.persons("holdout")) == 20
    )


def test_bio_spans_point_at_values_after_shuffle(corpus):
    import random

    person = corpus.people[0]
    bio = person.bio(random.Random(3))
    assert sorted(bio["text"][a:b] for a, b in bio["spans"]) == sorted(person.pii.values())
    assert all(s.startswith(person.name) for s in bio["text"].split(". ") if s)


def test_probes_end_right_before_the_value(corpus):
    p = corpus.persons("forget")[0]
    for f in PII_FIELDS:
        probe = p.probe(f)
        assert probe["prompt"] + " " + probe["value"] in p.bio()["text"]
        assert p.probe(f, paraphrase=True)["prompt"] != probe["prompt"]
    qa = p.qa()
    assert len(qa) == len(PII_FIELDS) and qa[0]["answer"] == p.pii[qa[0]["field"]]


def test_passage_probe_and_example(corpus):
    t = corpus.texts("forget")[0]
    probe, ex = t.probe(), t.example()
    assert probe["prompt"] + probe["target"] == t.text
    ((a, b),) = ex["spans"]
    assert ex["text"][a:b] == probe["target"].lstrip()


def test_bad_corpus_arguments():
    with pytest.raises(ValueError, match="forget_frac"):
        build_pii_corpus(forget_frac=1.5)
    with pytest.raises(ValueError, match="n_people"):
        build_pii_corpus(n_people=1)


def test_jsonl_loader_and_errors(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"prompt": "a", "target": "b"}) + "\n\n" + json.dumps({"text": "c"}) + "\n")
    assert load_jsonl(f) == [{"prompt": "a", "target": "b"}, {"text": "c"}]
    with pytest.raises(FileNotFoundError, match="not found"):
        load_jsonl(tmp_path / "missing.jsonl")
    f.write_text('{"text": "ok"}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2"):
        load_jsonl(f)
    f.write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_jsonl(f)


def test_tofu_loader_on_packaged_and_local_files(tmp_path):
    forget = load_tofu("builtin", "forget01")
    assert len(forget) == 40 and set(forget[0]) >= {"question", "answer"}
    assert len(load_data_spec("tofu:builtin:holdout01")) == 40
    with pytest.raises(FileNotFoundError, match="available"):
        load_tofu("builtin", "forget99")
    # A local dir of JSONL files (what a user's own copy looks like) reads the same rows.
    (tmp_path / "forget01.jsonl").write_text("".join(json.dumps(r) + "\n" for r in forget))
    assert load_tofu(tmp_path, "forget01") == forget
    with pytest.raises(FileNotFoundError, match="available: forget01"):
        load_tofu(tmp_path, "forget99")


def test_packaged_data_is_hash_checked(monkeypatch):
    import lzma

    from genforget.data import packaged

    rows = {s: len(packaged.tofu_split(s)) for s in ("full", "forget10", "retain90", "holdout10")}
    assert rows == {"full": 4000, "forget10": 400, "retain90": 3600, "holdout10": 400}
    text = packaged.shakespeare_text()
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    # A copy whose bytes differ from SHA256SUMS is refused, not read.
    real = lzma.decompress
    monkeypatch.setattr(packaged.lzma, "decompress", lambda b: real(b) + b" ")
    with pytest.raises(ValueError, match="damaged"):
        packaged.tofu_split("forget01")


def test_datasets_and_plain_inputs():
    from datasets import Dataset

    ds = Dataset.from_list([{"question": "q?", "answer": "a"}, {"question": "r?", "answer": "b"}])
    assert from_dataset(ds)[1] == {"question": "r?", "answer": "b"}
    assert as_examples(["hello"]) == [{"text": "hello"}]
    with pytest.raises(ValueError, match="forget\\[0\\]"):
        as_examples([{"x": 1}], "forget")


def test_data_spec_builtin_splits():
    forget = load_data_spec("pii:forget", n_people=20, n_passages=10, forget_frac=0.2)
    assert len(forget) == 4 + 2 and all("spans" in ex for ex in forget)
    with pytest.raises(ValueError, match="split must be"):
        load_data_spec("pii:train")


def test_default_corpus_is_stable():
    """Cached demo models are keyed by corpus arguments: the people a seed makes must never drift
    (adding a feature must draw from a Faker of its own, as the truth-ratio perturbations do)."""
    import hashlib

    c = build_pii_corpus()
    blob = json.dumps(
        [(p.name, p.pii, p.template, p.split) for p in c.people] + [(t.text, t.split) for t in c.passages]
    ).encode()
    assert (
        hashlib.sha256(blob).hexdigest() == "fabec0e7a37d04549d2c6a2ce5d71dcba5bc58efb1ae97c0868ccb62ed8e184c"
    )


def test_truth_items_and_calibration(corpus):
    item = corpus.truth_items("forget")[0]
    person = corpus.persons("forget")[0]
    value = person.pii[item["field"]]
    assert (
        value in item["answer"]
        and value in item["paraphrased_answer"]
        and item["answer"] != item["paraphrased_answer"]
    )
    assert len(item["perturbed_answer"]) >= 2 and not any(value in p for p in item["perturbed_answer"])
    cal = corpus.calibration_examples()
    names = {p.name for p in corpus.people}
    assert len(cal) == 2 * (4 + 2)  # twice the forget split's people and passages: same make-up
    assert not any(ex["text"].startswith(tuple(names)) for ex in cal)


def test_corpus_does_not_depend_on_the_date(monkeypatch):
    """Faker's age-based dates count from today: a corpus must not (a cached victim trained on
    yesterday's birthdays would otherwise be evaluated on today's)."""
    import datetime as dt

    import faker.providers.date_time as fdt

    class LaterDateTime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2031, 6, 1, tzinfo=tz)

    people = [p.pii for p in build_pii_corpus(20, 4, 0.2).people]
    monkeypatch.setattr(fdt, "datetime", LaterDateTime)
    assert [p.pii for p in build_pii_corpus(20, 4, 0.2).people] == people
