"""The plain API's own calibration: shape twins of the forget targets, and the collateral watch."""

from __future__ import annotations

import copy
import random
import re

import pytest

import genforget
from genforget.evaluation.split import EvalSplit
from genforget.lm.twins import collateral_examples, shape_pattern, shape_twin, shape_twins


def test_shape_twin_replaces_targets_kind_for_kind_and_keeps_the_context():
    ex = {"prompt": "Ann Lee's phone number is", "target": " 555-010-0199, Ann."}
    twin = shape_twin(ex, random.Random(0))
    text, ((a, b),) = twin["text"], twin["spans"]
    assert text[:a] == "Ann Lee's phone number is" and len(text) == len(ex["prompt"]) + len(ex["target"])
    assert re.fullmatch(r" \d{3}-\d{3}-\d{4}, [A-Z][a-z]{2}\.", text[a:b])
    assert text[a:b] != ex["target"]
    assert shape_twin({"text": "no targets here"}, random.Random(0)) is None
    assert len(shape_twins([ex, {"text": "whole"}, ex])) == 2


def test_collateral_finds_other_peoples_values_of_the_same_shape():
    assert shape_pattern("Ann Lee") is None  # a name's shape would match any two words
    forget = [
        {"prompt": "Ann's phone is", "target": " 555-010-0199"},
        {"prompt": "Ann's mail", "target": " a.b@c.org"},
    ]
    retain = [
        {"text": "Bob's phone is 123-456-7890 and Bob's mail is bob.x@y.com."},
        {"text": "Cy is 12-34 years."},
    ]
    (ex,) = collateral_examples(forget, retain)
    assert [ex["text"][a:b] for a, b in ex["spans"]] == ["123-456-7890", "bob.x@y.com"]


@pytest.fixture(scope="module")
def phone_case(corpus):
    target = corpus.persons("forget")[0]
    forget = [{"prompt": target.probe("phone")["prompt"], "target": " " + target.pii["phone"]}]
    groups = {
        "target": [target.probe("phone")],
        "retain_phone": [p.probe("phone") for p in corpus.persons("retain")],
        "retain_all": corpus.pii_probes("retain"),
    }
    return forget, corpus.full_text_examples("retain"), groups


def _rates(model, tok, groups):
    return {
        g: genforget.evaluate(model, tok, EvalSplit(pii_probes=pr))["forget_pii_extraction"]
        for g, pr in groups.items()
    }


def test_api_without_calibration_stops_before_it_damages_other_people(victim, phone_case):
    model, tok = victim
    forget, retain, groups = phone_case
    before = _rates(model, tok, groups)
    # The README example as it was measured (LoRA scaled alpha/r): unwatched, it took the others'
    # phones with the target's. Rank-stabilised LoRA (the default since) damages less at this
    # learning rate, which would leave the watch nothing to prevent.
    kw = dict(method="npo", learning_rate=5e-4, max_steps=100, beta=0.02, use_lora=True, use_rslora=False)
    unguarded = _rates(
        genforget.unlearn(copy.deepcopy(model), tok, forget, retain, calibration=False, **kw), tok, groups
    )
    res = genforget.unlearn(copy.deepcopy(model), tok, forget, retain, return_history=True, **kw)
    guarded = _rates(res.model, tok, groups)
    assert before["target"] == 1.0 and unguarded["target"] == 0.0 and guarded["target"] == 0.0
    # the README example's failure: other people's phone numbers go with the target's ...
    assert unguarded["retain_phone"] <= 0.7 * before["retain_phone"]
    # ... unless their phone-shaped strings are watched and the last good weights kept
    stop = next(r for r in res.history if r.get("stopped"))
    assert stop["stop_reason"] in ("collateral", "calibrated")
    assert guarded["retain_phone"] >= 0.8 * before["retain_phone"] > unguarded["retain_phone"], (
        before,
        unguarded,
        guarded,
    )
    assert guarded["retain_all"] >= 0.95 * before["retain_all"]


def test_twin_values_are_not_drawn_from_the_corpus_faker_sequence(corpus):
    # The corpus and a TwinMaker share the run's seed; unsalted, the twins' Faker replays the
    # corpus's draws and a "never seen" twin can carry a trained person's real value.
    from genforget.requests.twins import TwinMaker

    maker = TwinMaker(corpus.seed)
    drawn = {maker.fake.email() for _ in range(200)}  # emails: too many to collide by chance
    assert not drawn & {p.pii["email"] for p in corpus.people}


def _scripted_stop(extractions: list[float], monkeypatch):
    """A CalibratedStop whose collateral extraction at each check is read from ``extractions``
    (the baseline first); the calibrated comparison never fires."""
    from genforget.lm import outcome
    from genforget.lm.safeguards.stopping import CalibratedStop

    stop = CalibratedStop(1, [{"input_ids": [1, 2], "labels": [1, 2]}], None, every=1, statistic="nll",
                          collateral_feats=[{"input_ids": [1], "labels": [1]}])  # fmt: skip
    values = iter(extractions)
    monkeypatch.setattr(outcome, "measure", lambda *a, **k: outcome.Figures(next(values), 0.1, 1.0, 10))
    stop.refresh = lambda step, model: 1e9  # unseen far above: only the collateral watch decides
    stop.latest[:] = 0.0
    return stop


def test_a_collateral_trip_backs_off_and_goes_on_instead_of_ending_the_run(monkeypatch):
    import torch

    from genforget.lm.safeguards.stopping import COLLATERAL_PATIENCE, MAX_BACKOFFS, check_stop
    from genforget.lm.train_state import TrainState

    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([w], lr=1e-3)
    mod = torch.nn.Module()
    mod.w = w
    state = TrainState(mod, opt, mod)  # what the trainer hands over (shares under FSDP / ZeRO)
    # baseline 1.0; in bound at steps 1-2 (loss 0.1 allowed); past it for `patience` checks.
    stop = _scripted_stop([1.0, 0.95, 0.9] + [0.5] * COLLATERAL_PATIENCE + [1.0] * 20, monkeypatch)
    step = 0
    for step in range(3 + COLLATERAL_PATIENCE):
        w.data.fill_(float(step))  # "training" moves the weight each step
        opt.state[w] = {"step": torch.tensor(1.0)}
        assert not check_stop(stop, step, None, state, opt), step
    # The trip: the weights of step 2 (the last within the bound) back, lr halved, moments reset,
    # and the run goes on.
    assert w.item() == 2.0 and opt.param_groups[0]["lr"] == pytest.approx(5e-4) and not opt.state
    assert stop.backoffs == [{"step": step, "restored_step": 2, "extraction": 0.5, "lr": pytest.approx(5e-4)}]
    assert stop.reason == "" and all(h[0] != step for h in stop.history)
    assert not check_stop(stop, step + 1, None, state, opt) and stop.last_good_step == step + 1

    # Past the bound for good: at most MAX_BACKOFFS back-offs, then a stop with the last good weights.
    stop = _scripted_stop([1.0] + [0.5] * 100, monkeypatch)
    trips = 0
    for step in range(100):
        w.data.fill_(100.0 + step)
        if check_stop(stop, step, None, state, opt):
            break
        trips = len(stop.backoffs)
    assert trips == MAX_BACKOFFS and stop.reason == "collateral" and w.item() == 100.0
    assert step == (MAX_BACKOFFS + 1) * COLLATERAL_PATIENCE


def test_sentence_probes_ask_each_watched_value_with_its_own_sentence_alone():
    from genforget.lm.twins import sentence_probes

    text = "Bob Lee lives at 3 Elm St. Bob Lee's phone number is 123-456-7890. Bob works."
    a = text.index("123")
    first = "Ann's phone is 555-123-4567."  # a value in the first sentence: no other context
    watched = [{"text": text, "spans": [(a, a + 12)]}, {"text": first, "spans": [(15, 27)]}]
    (probe,) = sentence_probes(watched)
    assert probe == {"text": "Bob Lee's phone number is 123-456-7890", "spans": [(26, 38)]}
    assert len(sentence_probes(watched * 5, limit=3)) == 3


def test_the_bound_holds_for_values_asked_alone_too(monkeypatch):
    """In-context extraction flat, the same values asked alone fall by 0.3: past the bound."""
    from genforget.lm import outcome
    from genforget.lm.safeguards.stopping import CalibratedStop

    one = [{"input_ids": [1], "labels": [1]}]
    stop = CalibratedStop(
        1, one, None, every=1, statistic="nll", collateral_feats=one, collateral_probe_feats=one
    )
    # measure() is called for the watched texts, the probes, then the forget targets (none here).
    values = iter([0.9, 0.9, 0.9, 0.85, 0.9, 0.6])
    monkeypatch.setattr(outcome, "measure", lambda *a, **k: outcome.Figures(next(values), 0.1, 1.0, 10))
    assert stop.collateral_check(0, None) == "ok" and stop.probe_base == 0.9
    assert stop.collateral_check(1, None) == "ok" and stop.lost == pytest.approx(0.05)
    assert stop.collateral_check(2, None) == "over" and stop.lost == pytest.approx(0.3)
    assert "asked with their own sentence alone from 0.90 to 0.60" in stop.collateral_words()
