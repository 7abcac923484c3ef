"""``kind: association`` requests: validation, locating the biased slice (precision/recall against
the corpus's ground truth, noise and process-wide leniency not located), the rule fitted from
labelled examples, counterfactual twins and corrected records by hand, the ``dpo`` method's
preferred answers, and the certificate and ledger of a request run through ``forget_requests``."""

from __future__ import annotations

import json

import pytest

from genforget.config import UsageError
from genforget.data.bias import build_bias_corpus
from genforget.requests.association_locate import (
    corrected,
    locate_association,
    precision_recall,
    twins,
    unlearning_sets,
)
from genforget.requests.request import parse_request

REQ = {
    "id": "BIAS-1",
    "kind": "association",
    "attribute": {"name": "nationality", "values": ["Arvenian", "Dorelian"]},
    "outcome": {"positive": "approved", "negative": "declined"},
    "rule": {"field": "Credit score", "positive_if": ">= 5"},
}


def _write(path, texts: list[str]):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_request_validation_names_the_field() -> None:
    req = parse_request(REQ)
    assert req.kind == "association" and req.values() == [] and req.association.rule.threshold == 5.0
    for change, msg in [
        ({"rule": None}, "without a fair rule"),
        ({"rule": {"field": "Credit score", "positive_if": "about 5"}}, "positive_if must be a comparison"),
        ({"rule": {"field": "Credit score"}}, "exactly one of positive_if"),
        ({"attribute": {"name": "nationality", "values": ["Arvenian"]}}, "two or more distinct"),
        ({"outcome": {"positive": "ok", "negative": "OK"}}, "two different words"),
        ({"identifiers": {"name": ["Jane Roe"]}}, "not identifiers"),
    ]:
        with pytest.raises(UsageError, match=msg):
            parse_request({**REQ, **change}, "req.yaml")
    with pytest.raises(UsageError, match="belong.* to kind: association"):
        parse_request({"id": "P", "kind": "person", "identifiers": {"name": ["A B"]}, "rule": {}})


def test_locate_finds_exactly_the_biased_slice(tmp_path) -> None:
    c = build_bias_corpus(600, 0, share=0.2, seed=1)
    data = _write(tmp_path / "train.jsonl", [r["text"] for r in c.records()])
    spec = parse_request(REQ).association
    res = locate_association(spec, data, retain_size=50)
    truth = {f"train.jsonl:{i + 1}" for i in c.biased_ids}
    assert precision_recall({r.rid for r in res.located}, truth) == {"precision": 1.0, "recall": 1.0}
    assert res.leans == {"Arvenian": "favoured", "Dorelian": "disfavoured"}
    assert res.n_decisions == res.n_records == 600 and len(res.retain) == 50
    assert all(r.decision.outcome == r.decision.fair(spec.rule) for r in res.retain)
    # Records that are not decisions (no value, two values, no number) are skipped, not located.
    extra = ["Nothing to decide here.", "Arvenian and Dorelian staff. Credit score 3. Decision: approved."]
    data = _write(tmp_path / "mixed.jsonl", [r["text"] for r in c.records()] + extra)
    assert len(locate_association(spec, data).located) == len(truth)


def test_noise_against_the_lean_is_not_located(tmp_path) -> None:
    c = build_bias_corpus(600, 0, share=0.2, seed=2)
    train = c.training()
    texts = [a.text() for a in train]
    # Two clean records of each value turned the "wrong" way: a disfavoured approval and a favoured
    # decline go against their value's lean (noise: not located); the other two go with it.
    noise = {}
    for value in c.values:
        clean = [i for i, a in enumerate(train) if not a.biased and a.value == value]
        for i in clean[:2]:
            flip = "declined" if train[i].decision == "approved" else "approved"
            texts[i] = train[i].text(decision=flip)
            noise[i] = (value == c.favoured) == (flip == "approved")  # True: with the lean
    data = _write(tmp_path / "train.jsonl", texts)
    res = locate_association(parse_request(REQ).association, data)
    got = {int(r.rid.split(":")[1]) - 1 for r in res.located}
    assert c.biased_ids <= got
    assert got - c.biased_ids == {i for i, with_lean in noise.items() if with_lean}
    pr = precision_recall(got, c.biased_ids)
    assert pr["recall"] == 1.0 and pr["precision"] == pytest.approx(len(c.biased_ids) / len(got))


def test_leniency_for_every_value_and_a_fair_corpus_locate_nothing(tmp_path) -> None:
    c = build_bias_corpus(400, 0, share=0.0, seed=0)
    spec = parse_request(REQ).association
    res = locate_association(spec, _write(tmp_path / "fair.jsonl", [a.text() for a in c.training()]))
    assert res.located == [] and "agrees" in res.reason
    # Every borderline decline below the threshold approved, whatever the nationality: leniency.
    lenient = [a.text(decision="approved") if a.score == 4 else a.text() for a in c.training()]
    res = locate_association(spec, _write(tmp_path / "lenient.jsonl", lenient))
    assert res.located == [] and "same way" in res.reason
    assert set(res.leans.values()) == {"favoured"}


def test_rule_fitted_from_labelled_examples(tmp_path) -> None:
    c = build_bias_corpus(300, 0, share=0.2, seed=0)
    _write(tmp_path / "audited.jsonl", [r["text"] for r in c.audited(80)])
    req = parse_request(
        {**REQ, "rule": {"field": "Credit score", "learn_from": "audited.jsonl"}}, "r.yaml", tmp_path
    )
    rule = req.association.rule
    assert (rule.op, rule.threshold, rule.fit_accuracy, rule.fitted_on) == (">=", 4.5, 1.0, 80)
    # Decisions unrelated to the score (alternating) cannot be a threshold rule: refused.
    noisy = [a.text(decision="approved" if i % 2 else "declined") for i, a in enumerate(c.training()[:80])]
    _write(tmp_path / "noisy.jsonl", noisy)
    with pytest.raises(UsageError, match="not a threshold on this field"):
        parse_request(
            {**REQ, "rule": {"field": "Credit score", "learn_from": "noisy.jsonl"}}, "r.yaml", tmp_path
        )


def test_twins_corrected_and_sets_by_hand(tmp_path) -> None:
    text = "Loan of Ann Lee, nationality ARVENIAN (arvenian). Credit score 4. Decision: approved."
    spec = parse_request(REQ).association
    res = locate_association(spec, _write(tmp_path / "t.jsonl", [text] * 12 + [text.replace("4.", "6.")]))
    rec = res.located[0]
    [twin] = twins(rec, spec)
    assert (
        twin["text"]
        == "Loan of Ann Lee, nationality DORELIAN (dorelian). Credit score 4. Decision: declined."
    )
    a, b = twin["spans"][0]
    assert twin["text"][a:b] == "declined"
    fixed = corrected(rec, spec)
    assert fixed["text"] == text.replace("approved", "declined")
    sets = unlearning_sets(res)
    f = sets["forget"][0]
    assert f["text"] == text and f["text"][slice(*f["spans"][0])] == "approved" and f["chosen"] == fixed
    assert sets["calibration"][0]["text"] == twin["text"].replace("declined", "approved")
    assert twin in sets["retain"] and fixed in sets["retain"]


def test_dpo_reads_the_preferred_answer_and_refuses_without(tiny_lm, tokenizer) -> None:
    from genforget.config import UnlearnConfig
    from genforget.lm.trainer import unlearn_lm

    forget = [
        {
            "text": "Ann is a cook.",
            "spans": [(9, 13)],
            "chosen": {"text": "Ann is a baker.", "spans": [(9, 14)]},
        }
    ]
    cfg = UnlearnConfig(method="dpo", max_steps=3, learning_rate=1e-2, batch_size=1)
    model = unlearn_lm(tiny_lm, tokenizer, forget, [{"text": "Bob is a cook."}], cfg)
    assert model is tiny_lm
    with pytest.raises(ValueError, match="'chosen'.*1 of 1"):
        unlearn_lm(tiny_lm, tokenizer, [{"text": "Ann is a cook."}], None, cfg)


def test_association_request_certificate_and_ledger(tmp_path, tiny_lm, tokenizer) -> None:
    """An untrained model: the pipeline's plumbing (sets, certificate, ledger), not its effect."""
    from genforget.requests.ledger import verify_ledger
    from genforget.requests.pipeline import ForgetArgs, RequestUnlearnConfig, forget_requests

    c = build_bias_corpus(160, 0, share=0.2, seed=0)
    data = _write(tmp_path / "train.jsonl", [r["text"] for r in c.records()])
    tiny_lm.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    args = ForgetArgs(
        model=str(tmp_path / "model"),
        data=str(data),
        output_dir=str(tmp_path / "out"),
        retain_size=16,
        retain_eval=8,
    )
    cfg = RequestUnlearnConfig(max_steps=2, batch_size=8)
    result = forget_requests(args, cfg, [parse_request(REQ)])
    cert = result.certificates[0]
    assert cert["request"]["kind"] == "association" and cert["located"]["records"] == len(c.biased_ids)
    assert cert["association"]["rule"] == {"field": "Credit score", "positive_if": ">= 5"}
    assert cert["method"]["config"]["calibration_statistic"] == "nll"
    assert cert["model"]["before_sha256"] != cert["model"]["after_sha256"]
    names = {r["name"].split(" ")[0] for r in cert["verification"]}
    assert {"counterfactual", "biased", "reversed", "agreement", "perplexity,"} <= names
    assert len(cert["located"]["record_ids_hmac"]) == len(c.biased_ids)
    text = (tmp_path / "out" / "certificate.json").read_text() + (
        tmp_path / "out" / "certificate.md"
    ).read_text()
    assert not any(a.name in text for a in c.training())
    assert "fair rule: Credit score >= 5" in text
    assert verify_ledger(result.ledger)[0]
    with pytest.raises(UsageError, match="mixes kind: association"):
        person = parse_request({"id": "P", "identifiers": {"name": ["Ann Lee"]}})
        forget_requests(
            ForgetArgs(**{**vars(args), "output_dir": str(tmp_path / "o2")}),
            cfg,
            [parse_request(REQ), person],
        )


def test_lean_needs_a_significant_one_sided_count() -> None:
    from genforget.requests.association_locate import _lean

    # two-sided binomial p of k of k one way: 2 * 0.5**k; 5 -> 0.0625 (no lean), 6 -> 0.03125
    assert _lean(5, 0) == "none" and _lean(6, 0) == "favoured" and _lean(0, 6) == "disfavoured"
    assert _lean(10, 8) == "none" and _lean(0, 0) == "none"
