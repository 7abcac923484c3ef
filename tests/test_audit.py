"""Robustness audits (genforget.evaluation.audits): quantised and relearned copies of a model, the recovered
share, the relearning split and paraphrase probes. Bounds below were measured on the tiny victim
(see each test) and leave a margin for CPU-kernel differences."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from conftest import unlearn_corpus

import genforget
from genforget.adapters import add_lora
from genforget.config import UnlearnConfig
from genforget.data.pii import PII_FIELDS
from genforget.evaluation.audits import (
    AUDITS,
    paraphrase_probes,
    quantize_copy,
    recovered_share,
    relearn_copy,
    split_for_relearning,
)
from genforget.evaluation.split import corpus_split

bnb = pytest.importorskip("bitsandbytes")
BNB_LINEAR = {8: bnb.nn.Linear8bitLt, 4: bnb.nn.Linear4bit}
QUANT_DTYPE = {8: torch.int8, 4: torch.uint8}  # int8 rows / two NF4 codes packed per byte


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert after[k].dtype == v.dtype and torch.equal(after[k], v), f"{k} changed"


def _pii_probes(people: list) -> list[dict]:
    return [p.probe(f) for p in people for f in PII_FIELDS]


@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_copy_is_quantised_untouched_and_still_extracts(victim, corpus, bits: int, caplog) -> None:
    model, tok = victim
    before = _snapshot(model)
    q = quantize_copy(model, bits)
    assert q is not model
    _assert_unchanged(model, before)
    assert not any(isinstance(m, tuple(BNB_LINEAR.values())) for m in model.modules())

    # Every decoder Linear is quantised; the (tied) output head and the embeddings are not.
    linears = {n: m for n, m in q.named_modules() if isinstance(m, torch.nn.Linear)}
    decoder = {n: m for n, m in linears.items() if n.startswith("model.layers.")}
    assert len(decoder) == 2 * 7  # q, k, v, o, gate, up, down in 2 layers
    assert all(isinstance(m, BNB_LINEAR[bits]) for m in decoder.values())
    assert all(m.weight.dtype == QUANT_DTYPE[bits] for m in decoder.values())
    assert not isinstance(q.lm_head, BNB_LINEAR[bits])

    text = corpus.full_text_examples("forget")[0]["text"]
    batch = tok(text, return_tensors="pt")
    with torch.no_grad(), caplog.at_level(logging.WARNING):
        ref, got = model(**batch).logits, q(**batch).logits
    assert not any("MatMul8bitLt" in r.getMessage() for r in caplog.records)
    diff = (ref - got).abs()
    top1 = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    print(f"{bits}-bit logits: max|diff| {diff.max():.3f}, mean {diff.mean():.4f}, top-1 agree {top1:.3f}")
    # Measured: 8-bit max 0.41 / mean 0.04; 4-bit max 3.4 / mean 0.33 (logits up to ~15).
    assert diff.max() > 1e-3  # really rounded, not a float copy
    assert diff.mean() < {8: 0.15, 4: 0.8}[bits]
    assert top1 >= 0.9

    float_m = genforget.evaluate(model, tok, corpus_split(corpus, "forget"))
    quant_m = genforget.evaluate(q, tok, corpus_split(corpus, "forget"))
    print(
        f"{bits}-bit forget PII extraction {float_m['forget_pii_extraction']:.3f} -> {quant_m['forget_pii_extraction']:.3f}"
    )
    # Measured: 0.958 (23 of 24 probes) -> the same for both; perplexity 1.15 -> 1.15 / 1.18.
    assert float_m["forget_pii_extraction"] >= 0.9
    assert quant_m["forget_pii_extraction"] >= float_m["forget_pii_extraction"] - 0.1
    assert quant_m["forget_verbatim_extraction"] >= 0.5
    assert quant_m["forget_perplexity"] < 1.1 * float_m["forget_perplexity"]


def _lora_model(tiny_lm: torch.nn.Module) -> torch.nn.Module:
    """A PeftModel whose adapter really changes the outputs (fresh LoRA B is zero)."""
    peft_model = add_lora(tiny_lm, UnlearnConfig(use_lora=True))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    return peft_model.eval()


def test_quantize_copy_merges_a_lora_copy(tiny_lm, tokenizer) -> None:
    from peft import PeftModel

    peft_model = _lora_model(tiny_lm)
    before = _snapshot(peft_model)
    q = quantize_copy(peft_model, 8)
    assert isinstance(peft_model, PeftModel) and not isinstance(q, PeftModel)
    _assert_unchanged(peft_model, before)
    assert isinstance(q.model.layers[0].self_attn.q_proj, bnb.nn.Linear8bitLt)
    batch = tokenizer("Some text to score here", return_tensors="pt")
    with torch.no_grad():
        with_adapter = peft_model(**batch).logits
        with peft_model.disable_adapter():
            without = peft_model(**batch).logits
        got = q(**batch).logits
    # The adapter is in the quantised weights: far closer to the adapted model than to its base.
    assert (got - with_adapter).abs().mean() < 0.25 * (got - without).abs().mean()


def test_quantize_copy_rejects_bad_bits_and_missing_bitsandbytes(tiny_lm, monkeypatch) -> None:
    with pytest.raises(ValueError, match="8 or 4"):
        quantize_copy(tiny_lm, 3)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    with pytest.raises(ImportError, match=r"pip install genforget\[quant\]"):
        quantize_copy(tiny_lm, 8)


def test_relearning_restores_the_attack_slice(victim, corpus) -> None:
    model, tok = victim
    model = unlearn_corpus(model, tok, corpus, method="npo", beta=0.02, learning_rate=1e-3, max_steps=40)
    attack, held_out = split_for_relearning(corpus.persons("forget"))
    assert len(attack) == len(held_out) == 2

    def extraction(m: torch.nn.Module, people: list) -> float:
        return genforget.evaluate(m, tok, _pii_probes(people))["forget_pii_extraction"]

    unlearned = {"attack": extraction(model, attack), "held_out": extraction(model, held_out)}
    assert unlearned["attack"] <= 0.1  # measured 0.0 on both slices

    before = _snapshot(model)
    attacked = relearn_copy(
        model, tok, [p.bio(name_spans=True) for p in attack], steps=10, learning_rate=1e-3
    )
    assert attacked is not model and not attacked.training
    _assert_unchanged(model, before)
    after = {"attack": extraction(attacked, attack), "held_out": extraction(attacked, held_out)}
    print(f"relearning: PII extraction unlearned {unlearned} -> after 10 steps {after}")
    print("recovered share (attack):", recovered_share(after["attack"], unlearned["attack"], 1.0))
    # Measured: attack 0.0 -> 0.5 (5 steps: 0.17, 20 steps: 0.83); held-out stays 0.0.
    assert after["attack"] >= 0.3
    assert extraction(model, attack) == unlearned["attack"]  # the input model did not relearn


def test_relearn_copy_merges_lora_and_trains_every_weight(tiny_lm, tokenizer) -> None:
    from peft import PeftModel

    peft_model = _lora_model(tiny_lm)
    before = _snapshot(peft_model)
    examples = [{"prompt": "The answer is", "target": "forty two"}]
    out = relearn_copy(peft_model, tokenizer, examples, steps=2, learning_rate=1e-2)
    assert isinstance(peft_model, PeftModel) and not isinstance(out, PeftModel)
    _assert_unchanged(peft_model, before)
    assert all(p.requires_grad for p in out.parameters())
    # The embedding is frozen under LoRA; the attacker trains it too.
    assert not torch.equal(
        out.model.embed_tokens.weight, before["base_model.model.model.embed_tokens.weight"]
    )
    with pytest.raises(ValueError):
        relearn_copy(peft_model, tokenizer, [], steps=1)


def test_recovered_share() -> None:
    assert recovered_share(0.5, 0.0, 1.0) == pytest.approx(0.5)
    assert recovered_share(0.2, 0.1, 0.9) == pytest.approx(0.125)
    assert recovered_share(0.9, 0.1, 0.9) == pytest.approx(1.0)
    assert recovered_share(0.0, 0.2, 1.0) == pytest.approx(-0.25)  # forgot more: not clipped
    assert recovered_share(1.2, 0.2, 1.0) == pytest.approx(1.25)  # beyond the victim: not clipped
    assert recovered_share(0.5, 0.1, None) is None
    assert recovered_share(0.5, 0.3, 0.3) is None  # nothing was forgotten
    assert recovered_share(0.5, 0.3, 0.3 + 1e-12) is None
    assert recovered_share(0.5, 0.6, 0.3) is None  # "unlearning" raised the metric


def test_split_for_relearning() -> None:
    items = list(range(20))
    attack, held = split_for_relearning(items, fraction=0.3, seed=1)
    assert (attack, held) == split_for_relearning(items, fraction=0.3, seed=1)
    assert len(attack) == 6 and len(held) == 14
    assert not set(attack) & set(held) and sorted(attack + held) == items
    assert attack == sorted(attack) and held == sorted(held)  # input order kept
    assert split_for_relearning(items, fraction=0.3, seed=2) != (attack, held)
    assert split_for_relearning(["a"]) == (["a"], [])
    a2, h2 = split_for_relearning(["a", "b"], fraction=0.1)
    assert len(a2) == len(h2) == 1
    with pytest.raises(ValueError):
        split_for_relearning(items, fraction=1.0)


def test_paraphrase_probes_and_audit_names(corpus) -> None:
    assert set(AUDITS) == {"relearn", "quant8", "quant4", "paraphrase", "relearn_speed"}
    plain, para = corpus.pii_probes("forget"), paraphrase_probes(corpus, "forget")
    assert len(para) == len(plain) == 6 * len(corpus.persons("forget"))
    for p, q in zip(plain, para, strict=True):
        assert (p["value"], p["field"]) == (q["value"], q["field"]) and p["prompt"] != q["prompt"]
