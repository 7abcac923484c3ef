"""TOFU parity: 9-term model utility, and the two scoring profiles pinned against hand computation."""

from __future__ import annotations

import dataclasses
import importlib
import math

import pytest
import torch
from scipy.stats import hmean

from genforget.evaluation.metrics import mia
from genforget.evaluation.metrics.likelihood import TokenStats
from genforget.evaluation.metrics.profiles import get_scoring
from genforget.evaluation.metrics.text import extraction_strength

# genforget.evaluation.evaluate the module (the package exports the function of the same name)
ev = importlib.import_module("genforget.evaluation.evaluate")

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


def _st(logp, target=None, mu=None, sigma=None) -> TokenStats:
    logp = torch.tensor(logp)
    target = torch.tensor(target if target is not None else [0] * len(logp))
    mu = torch.tensor(mu) if mu is not None else torch.zeros(len(logp))
    sigma = torch.tensor(sigma) if sigma is not None else torch.ones(len(logp))
    return TokenStats(logp, target, target.clone(), mu, sigma)


def test_zlib_text_per_profile(tokenizer, monkeypatch):
    """open-unlearning's zlib attack compresses ``tokenizer.decode(labels, skip_special_tokens=True)``
    (src/evals/metrics/mia/zlib.py): the answer as decoded from its tokens, EOS dropped."""
    seen = []
    real = mia.zlib_score
    monkeypatch.setattr(mia, "zlib_score", lambda logp, text: seen.append(text) or real(logp, text))
    ex = {"question": "Who wrote it?", "answer": "Alice Smith."}
    ids = tokenizer(" Alice Smith.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    st = [_st([-1.0] * len(ids), ids)]
    for scoring, text in [("open_unlearning", tokenizer.decode(ids, skip_special_tokens=True)),
                          ("genforget", "Who wrote it? Alice Smith.")]:  # fmt: skip
        seen.clear()
        mia.attack_aucs(st, st, [ex], [ex], 0.4, get_scoring(scoring), tokenizer)
        assert seen == [text, text]
    assert seen and "<|eos|>" not in text


def test_token_wise_attacks_leave_the_appended_eos_out(tokenizer):
    """tokenwise_logprobs drops the last label ("-1 to ignore eos prediction"): min-k % and
    min-k %++ never see the EOS in open-unlearning, while LOSS (evaluate_probability) does."""
    # forget: answer token likely, EOS unlikely; holdout: the reverse
    f, h = [_st([-0.1, -5.0])], [_st([-0.2, -0.01])]
    ou = mia.attack_aucs(f, h, [{}], [{}], 0.4, get_scoring("open_unlearning"), tokenizer)
    assert ou["mia_min_k_auc"] == 1.0 and ou["mia_min_k_pp_auc"] == 1.0  # answer token alone decides
    assert ou["mia_loss_auc"] == 0.0  # mean with EOS: forget 2.55 > holdout 0.105
    previous = dataclasses.replace(get_scoring("open_unlearning"), tokenwise_eos=True)
    assert mia.attack_aucs(f, h, [{}], [{}], 0.4, previous, tokenizer)["mia_min_k_auc"] == 0.0


def test_min_k_pp_floors_the_variance_like_open_unlearning():
    """min_k_plus_plus.py: sigma = clamp(E[lp^2] - mu^2, min=1e-6), then sqrt: sigma >= 1e-3."""
    logp, mu, sigma = torch.tensor([-0.5, -2.0]), torch.tensor([-0.4, -1.0]), torch.tensor([1e-5, 0.5])
    z = [(-0.5 + 0.4) / 1e-3, (-2.0 + 1.0) / 0.5]  # the first sigma floored at 1e-3
    assert mia.min_k_pp_score(logp, mu, sigma, 0.4, sigma_floor=1e-3) == pytest.approx(-min(z))
    assert mia.min_k_pp_score(logp, mu, sigma, 0.4) == pytest.approx(-(-0.1 / 1e-5))


def test_extraction_strength_no_match_is_one_over_n_for_open_unlearning():
    """memorization.py's ES loop leaves k = len - 1 when no suffix matches: ES = 1/len."""
    assert extraction_strength([5, 6, 7], [1, 2, 3]) == 0.0
    assert extraction_strength([5, 6, 7], [1, 2, 3], no_match_one_over_n=True) == pytest.approx(1 / 3)
    assert extraction_strength([5, 6, 3], [1, 2, 3], no_match_one_over_n=True) == pytest.approx(1 / 3)
    assert extraction_strength([1, 2, 3], [1, 2, 3], no_match_one_over_n=True) == 1.0


def test_exact_memorisation_leaves_eos_out_but_probability_keeps_it(tiny_lm, tokenizer):
    """By hand: EM over the answer's own tokens (argmax == label), probability over answer + EOS."""
    ex = {"question": Q, "answer": A}
    q_ids = tokenizer(Q, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(" " + A, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[tokenizer.bos_token_id, *q_ids, *a_ids, tokenizer.eos_token_id]])
    with torch.no_grad():
        logp = torch.log_softmax(tiny_lm(input_ids=ids).logits[0, :-1].float(), -1)
    start = 1 + len(q_ids)
    pos = range(start, ids.shape[1])  # answer tokens, then EOS
    argmax_hit = [logp[t - 1].argmax().item() == ids[0, t].item() for t in pos]
    nll = -sum(logp[t - 1, ids[0, t]].item() for t in pos) / len(pos)
    out = ev.evaluate(tiny_lm, tokenizer, [ex], scoring="open_unlearning")
    assert out["forget_exact_memorisation"] == pytest.approx(sum(argmax_hit[:-1]) / len(a_ids))
    assert out["forget_probability"] == pytest.approx(math.exp(-nll), rel=1e-4)


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
