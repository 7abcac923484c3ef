"""TOFU parity: 9-term model utility, and the two scoring profiles pinned against hand computation."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from scipy.stats import hmean

from genforget.metrics.likelihood import TokenStats

# genforget.evaluate the module (the package exports the function of the same name)
ev = importlib.import_module("genforget.evaluate")

Q, A = "Who wrote the tiny book?", "Alice Smith wrote it."
RETAIN = {
    "question": "Where was Bob born?",
    "answer": "Bob was born in Paris.",
    "paraphrased_answer": "Paris is where Bob was born.",
    "perturbed_answer": ["Bob was born in Rome.", "Bob was born in Oslo."],
}
GENERAL = {  # TOFU's real_authors / world_facts shape: no paraphrased answer
    "real_authors": [
        {"question": "Who wrote Hamlet?", "answer": "Shakespeare", "perturbed_answer": ["Dickens", "Twain"]}
    ],
    "world_facts": [
        {"question": "Capital of France?", "answer": "Paris", "perturbed_answer": ["Rome", "Berlin"]}
    ],
}


def _nll(model, tok, q: str, a: str, eos: bool) -> float:
    """Mean NLL of the answer tokens (and EOS) given BOS + question, computed by hand."""
    q_ids = tok(q, add_special_tokens=False)["input_ids"]
    a_ids = tok(" " + a, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])
    ids = torch.tensor([[tok.bos_token_id, *q_ids, *a_ids]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    start = 1 + len(q_ids)  # first answer token's position in ids
    return -sum(logp[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1])) / len(a_ids)


def test_model_utility_has_nine_terms_and_general_truth_ratio_uses_the_answer(tiny_lm, tokenizer):
    out, det = ev.evaluate(
        tiny_lm, tokenizer, [{"question": Q, "answer": A}], [RETAIN], general=GENERAL, return_details=True
    )
    assert len(det["model_utility_terms"]) == 9
    assert out["model_utility"] == pytest.approx(hmean([out[t] for t in det["model_utility_terms"]]))
    item = GENERAL["real_authors"][0]
    l_true = _nll(tiny_lm, tokenizer, item["question"], item["answer"], eos=False)
    l_pert = [_nll(tiny_lm, tokenizer, item["question"], p, eos=False) for p in item["perturbed_answer"]]
    tr = math.exp(l_true - sum(l_pert) / len(l_pert))
    assert out["real_authors_truth_ratio"] == pytest.approx(max(0.0, 1 - tr), rel=1e-4, abs=1e-6)
    p = [math.exp(-x) for x in [l_true, *l_pert]]
    assert out["real_authors_normalised_probability"] == pytest.approx(p[0] / sum(p), rel=1e-4)
    # the retain item keeps its paraphrase as the true answer
    l_para = _nll(tiny_lm, tokenizer, RETAIN["question"], RETAIN["paraphrased_answer"], eos=False)
    l_rp = [_nll(tiny_lm, tokenizer, RETAIN["question"], x, eos=False) for x in RETAIN["perturbed_answer"]]
    tr_r = math.exp(l_para - sum(l_rp) / len(l_rp))
    assert out["retain_truth_ratio"] == pytest.approx(max(0.0, 1 - tr_r), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("scoring,eos", [("genforget", False), ("open_unlearning", True)])
def test_probability_with_and_without_eos(tiny_lm, tokenizer, scoring, eos):
    out, det = ev.evaluate(
        tiny_lm, tokenizer, [{"question": Q, "answer": A}], scoring=scoring, return_details=True
    )
    assert out["forget_probability"] == pytest.approx(
        math.exp(-_nll(tiny_lm, tokenizer, Q, A, eos)), rel=1e-4
    )
    assert det["scoring"].startswith(scoring)
    other = _nll(tiny_lm, tokenizer, Q, A, not eos)
    assert out["forget_probability"] != pytest.approx(math.exp(-other), rel=1e-4)


def test_zlib_compresses_the_answer_alone_in_the_open_unlearning_profile():
    # forget: loss 1.0, long question, short answer; holdout: loss 1.2, short question, long answer
    f = {"question": "A question that is long enough to compress into many bytes " * 3, "answer": "Yes."}
    h = {"question": "Q?", "answer": "An answer that is long enough to compress into many bytes " * 3}
    one = torch.tensor([0.0]), torch.tensor([1.0])  # mu, sigma: min-k %++ needs them
    st = [TokenStats(torch.tensor([-1.0]), torch.tensor([0]), torch.tensor([0]), *one)]
    sh = [TokenStats(torch.tensor([-1.2]), torch.tensor([0]), torch.tensor([0]), *one)]
    # whole text: 1.0/|z(long)| < 1.2/|z(short)| -> forget looks like a member -> AUC 1
    assert ev._mia(st, sh, [f], [h], 0.4)["mia_zlib_auc"] == 1.0
    # answer alone: 1.0/|z("Yes.")| > 1.2/|z(long)| -> AUC 0
    assert ev._mia(st, sh, [f], [h], 0.4, zlib_on_answer=True)["mia_zlib_auc"] == 0.0


@pytest.mark.parametrize("scoring", ["genforget", "open_unlearning"])
def test_qa_generation_budget(tiny_lm, tokenizer, monkeypatch, scoring):
    seen = []

    def fake_generate(model, tok, prompts, max_new_tokens, **kw):
        seen.append(max_new_tokens)
        return ["" for _ in prompts]

    monkeypatch.setattr(ev, "generate", fake_generate)
    ev.evaluate(tiny_lm, tokenizer, [{"question": Q, "answer": A}], scoring=scoring)
    expected = 200 if scoring == "open_unlearning" else ev.target_budget(tokenizer, [A], extra=8)
    assert seen == [expected]


def test_unknown_scoring_is_refused(tiny_lm, tokenizer):
    with pytest.raises(ValueError, match="scoring must be one of"):
        ev.evaluate(tiny_lm, tokenizer, [{"question": Q, "answer": A}], scoring="tofu")


def test_dump_examples_only_when_asked(tiny_lm, tokenizer):
    _, det = ev.evaluate(tiny_lm, tokenizer, [{"question": Q, "answer": A}], return_details=True)
    assert "examples" not in det
    _, det = ev.evaluate(
        tiny_lm, tokenizer, [{"question": Q, "answer": A}], return_details=True, dump_examples=True
    )
    (row,) = det["examples"]
    assert row["kind"] == "qa" and row["answer"] == A and "generation" in row
