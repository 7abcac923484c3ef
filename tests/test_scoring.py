"""Masked scoring, spans, collation, the reference cache and chunked log-probs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import genforget.lm.scoring as scoring
from genforget.config import UnlearnConfig
from genforget.lm.batches import cached_reference_logp
from genforget.lm.data import IGNORE, Collator, normalise_example, tokenize_example
from genforget.lm.scoring import sequence_scores, token_logprobs
from genforget.lm.trainer import unlearn_lm


def test_spans_select_exactly_the_value_tokens(tokenizer):
    text = "Ann Lee's phone number is 555-123-4567."
    start = text.index("555")
    feat = tokenize_example({"text": text, "spans": [(start, start + 12)]}, tokenizer)
    targets = [t for t, lab in zip(feat["input_ids"], feat["labels"], strict=True) if lab != IGNORE]
    assert tokenizer.decode(targets).strip() == "555-123-4567"
    assert feat["input_ids"][0] == tokenizer.bos_token_id and feat["labels"][0] == IGNORE


def test_prompt_target_becomes_one_span():
    ex = normalise_example({"prompt": "Q: where?", "target": "Paris"})
    assert ex["text"] == "Q: where? Paris"
    a, b = ex["spans"][0]
    assert ex["text"][a:b] == " Paris"
    with pytest.raises(ValueError, match="expected 'text'"):
        normalise_example({"foo": 1})


def test_collator_masks_from_lengths_even_when_pad_equals_eos():
    eos = 7
    batch = Collator(pad_token_id=eos)(
        [{"input_ids": [1, eos, 3], "labels": [1, eos, 3]}, {"input_ids": [1], "labels": [1]}]
    )
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]  # the real eos stays attended
    assert batch["labels"][1].tolist() == [1, IGNORE, IGNORE]


def test_sequence_scores_match_manual_computation(tiny_lm, tokenizer):
    feats = [
        tokenize_example({"prompt": "Ann's email is", "target": " a@b.c"}, tokenizer),
        tokenize_example({"text": "Bo lives at 1 Main Street."}, tokenizer),
    ]
    batch = Collator(tokenizer.pad_token_id)(feats)
    s = sequence_scores(tiny_lm, batch)
    for i, f in enumerate(feats):
        ids = torch.tensor([f["input_ids"]])
        logp = F.log_softmax(tiny_lm(input_ids=ids).logits[0, :-1].float(), -1)
        labels = torch.tensor(f["labels"][1:])
        m = labels != IGNORE
        tok = logp[torch.arange(len(labels)), labels.clamp(min=0)][m]
        assert s.logp[i].item() == pytest.approx(tok.sum().item(), abs=1e-4)
        assert s.nll[i].item() == pytest.approx(-tok.mean().item(), abs=1e-5)


@pytest.mark.parametrize("chunk", ["row", "two_positions", "one_position"])
def test_chunked_logprobs_equal_unchunked(tiny_lm, tokenizer, monkeypatch, chunk):
    feats = [tokenize_example({"text": t}, tokenizer) for t in ["one two three", "four five", "six"]]
    batch = Collator(tokenizer.pad_token_id)(feats)
    full = sequence_scores(tiny_lm, batch).logp
    (grad_full,) = torch.autograd.grad(full.sum(), tiny_lm.lm_head.weight)
    vocab, n_pos = tiny_lm.config.vocab_size, batch["input_ids"].shape[1] - 1
    size = {"row": vocab * n_pos, "two_positions": 2 * vocab, "one_position": 1}[chunk]
    monkeypatch.setattr(scoring, "CHUNK_ELEMENTS", size)
    chunked = sequence_scores(tiny_lm, batch).logp
    (grad_chunked,) = torch.autograd.grad(chunked.sum(), tiny_lm.lm_head.weight)
    assert torch.allclose(chunked, full, atol=1e-5)
    assert torch.allclose(grad_chunked, grad_full, atol=1e-5)


def test_cached_reference_equals_recomputed(tiny_lm, tokenizer, corpus):
    forget = corpus.unlearn_examples("forget")
    feats = [dict(tokenize_example(ex, tokenizer), idx=i) for i, ex in enumerate(forget)]
    collate = Collator(tokenizer.pad_token_id)
    cache = cached_reference_logp(tiny_lm, feats, collate, batch_size=4)
    with torch.no_grad():
        one_by_one = torch.stack([sequence_scores(tiny_lm, collate([f])).logp[0] for f in feats])
    assert torch.allclose(cache, one_by_one, atol=1e-4)


def test_training_uses_the_cache_not_a_second_model(tiny_lm, tokenizer, corpus, monkeypatch):
    """The reference log-probs seen by NPO at every step are the frozen model's, from the cache."""
    forget = corpus.unlearn_examples("forget")
    frozen = copy.deepcopy(tiny_lm)
    seen = []
    from genforget.methods.npo import NPO

    orig = NPO.forget_loss

    def spy(self, scores):
        seen.append(scores.ref_logp.detach().clone())
        return orig(self, scores)

    monkeypatch.setattr(NPO, "forget_loss", spy)
    unlearn_lm(
        tiny_lm, tokenizer, forget, None, UnlearnConfig(method="npo", max_steps=3, batch_size=len(forget))
    )
    collate = Collator(tokenizer.pad_token_id)
    with torch.no_grad():
        want = sorted(
            sequence_scores(frozen, collate([tokenize_example(ex, tokenizer)])).logp.item() for ex in forget
        )
    for ref in seen:
        assert sorted(ref.tolist()) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("use_lora", [False, True])
def test_npo_starts_at_reference(use_lora, tiny_lm, tokenizer, corpus, monkeypatch):
    """At step 0 the model *is* its reference (cached copy, or base with a zero-init adapter off),
    so every log-ratio is 0 and the NPO loss equals (2/beta)*ln 2."""
    from genforget.methods.npo import NPO

    ratios = []
    orig = NPO.forget_loss

    def spy(self, scores):
        ratios.append((scores.logp - scores.ref_logp).detach())
        return orig(self, scores)

    monkeypatch.setattr(NPO, "forget_loss", spy)
    cfg = UnlearnConfig(method="npo", max_steps=2, learning_rate=1e-2, use_lora=use_lora, beta=0.5)
    unlearn_lm(tiny_lm, tokenizer, corpus.unlearn_examples("forget"), None, cfg)
    assert torch.allclose(ratios[0], torch.zeros_like(ratios[0]), atol=1e-4)
    assert ratios[1].abs().max() > 1e-3  # after one step the model has moved away from its reference


def test_calibrated_stop_rule(tiny_lm, tokenizer):
    import math

    from genforget.lm.safeguards.stopping import CalibratedStop

    calib = [tokenize_example({"text": "alpha beta gamma delta"}, tokenizer)]
    stop = CalibratedStop(
        n_forget=3, calib_feats=calib, collate=Collator(tokenizer.pad_token_id), every=2, statistic="nll"
    )
    stop.update(torch.tensor([0, 1]), torch.tensor([1.0, 1.0]))
    assert not stop.should_stop(0, tiny_lm)  # example 2 not scored yet: no decision
    stop.update(torch.tensor([2]), torch.tensor([1.0]))
    assert not stop.should_stop(1, tiny_lm)  # forget NLL 1.0 < a random model's ~ln(300)
    assert stop.calib_value == pytest.approx(math.log(len(tokenizer)), rel=0.2)
    stop.update(torch.tensor([0, 1, 2]), torch.tensor([10.0, 10.0, 10.0]))
    assert stop.should_stop(2, tiny_lm)
    assert [h[0] for h in stop.history] == [1, 2] and stop.calib_step == 2  # re-scored at steps 0 and 2 only


def test_text_min_k_stop_scores_whole_texts(tiny_lm, tokenizer):
    from genforget.lm.safeguards.stopping import CalibratedStop
    from genforget.lm.scoring import min_k_rows

    collate = Collator(tokenizer.pad_token_id)
    texts = [tokenize_example({"text": t}, tokenizer) for t in ("alpha beta gamma delta", "one two three")]
    with pytest.raises(ValueError, match="forget_text_feats"):
        CalibratedStop(2, texts, collate, statistic="text_min_k")
    stop = CalibratedStop(2, texts[:1], collate, every=3, statistic="text_min_k", forget_text_feats=texts)
    decided = stop.should_stop(0, tiny_lm)
    _, forget, unseen = stop.history[-1]
    by_hand = []
    with torch.no_grad():
        for f in texts:
            logp, mask = token_logprobs(tiny_lm, collate([f]))
            by_hand.append(min_k_rows(logp, mask).item())
    assert forget == pytest.approx(sum(by_hand) / 2, rel=1e-5)
    assert unseen == pytest.approx(by_hand[0], rel=1e-5)
    assert decided == (forget >= unseen)
    assert not stop.should_stop(1, tiny_lm) and len(stop.history) == 1  # next check at step 3


def test_min_k_rows_and_statistics():
    from genforget.lm.safeguards.stopping import CalibratedStop
    from genforget.lm.scoring import min_k_rows

    logp = torch.tensor([[-0.1, -5.0, -2.0, -0.2, -1.0], [-3.0, -1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    # row 0: lowest 2 of 5 -> (5 + 2) / 2; row 1: lowest 1 of 2 -> 3
    assert min_k_rows(logp, mask).tolist() == pytest.approx([3.5, 3.0])
    stop = CalibratedStop(1, [], Collator(0), statistic="nll")
    assert stop.per_example(logp, mask).tolist() == pytest.approx([8.3 / 5, 2.0])
    with pytest.raises(ValueError, match="text_min_k"):
        CalibratedStop(1, [], Collator(0), statistic="mean")


@pytest.mark.parametrize("use_lora", [False, True])
def test_copied_reference_trains_like_the_shipped_one(use_lora, tiny_lm, tokenizer, corpus):
    """The naive deep-copied reference (the benchmark's baseline) gives the same training as the
    cache / adapter-off reference, and records one history row per step."""
    forget, retain = corpus.unlearn_examples("forget"), corpus.full_text_examples("retain")[:4]
    finals = {}
    for reference in ("auto", "copy"):
        cfg = UnlearnConfig(method="npo", max_steps=3, use_lora=use_lora, reference=reference, beta=0.5)
        history: list[dict] = []
        out = unlearn_lm(copy.deepcopy(tiny_lm), tokenizer, forget, retain, cfg, history=history)
        assert [h["step"] for h in history] == [0, 1, 2]
        assert all(h["seconds"] > 0 and h["tokens"] > 0 for h in history)
        finals[reference] = (
            [h["loss"] for h in history],
            torch.cat([p.detach().flatten() for p in out.parameters() if p.requires_grad]),
        )
    assert finals["auto"][0] == pytest.approx(finals["copy"][0], abs=1e-4)
    assert torch.allclose(finals["auto"][1], finals["copy"][1], atol=1e-5)
    with pytest.raises(ValueError, match="reference must be"):
        UnlearnConfig(reference="deepcopy")


def test_gradient_checkpointing_trains_the_same(tiny_lm, tokenizer, corpus):
    forget = corpus.unlearn_examples("forget")
    outs = []
    for ckpt in (False, True):
        cfg = UnlearnConfig(method="npo", max_steps=2, use_lora=True, gradient_checkpointing=ckpt)
        out = unlearn_lm(copy.deepcopy(tiny_lm), tokenizer, forget, None, cfg)
        assert out.base_model.model.is_gradient_checkpointing == ckpt
        outs.append(torch.cat([p.detach().flatten() for n, p in out.named_parameters() if "lora_B" in n]))
    assert outs[0].abs().max() > 1e-4  # the adapter (zero-initialised B) has trained
    assert torch.allclose(outs[0], outs[1], atol=1e-6)


def test_lm_head_runs_on_target_positions_only_with_the_same_values_and_gradients(tiny_lm, tokenizer, corpus):
    feats = [tokenize_example(ex, tokenizer) for ex in corpus.unlearn_examples("forget")]
    batch = Collator(tokenizer.pad_token_id)(feats)
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    seen = []
    hook = tiny_lm.lm_head.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    fast, _ = scoring.token_logprobs(tiny_lm, batch)
    hook.remove()
    assert seen == [(int(mask.sum()), tiny_lm.config.vocab_size)]  # only the target positions
    assert int(mask.sum()) < mask.numel()  # spanned examples: context tokens skipped
    assert not tiny_lm.lm_head._forward_pre_hooks  # the gathering hook is removed again
    grads_fast = torch.autograd.grad(fast.sum(), list(tiny_lm.parameters()))
    full, _ = scoring._full_token_logprobs(tiny_lm, batch, labels, mask)
    grads_full = torch.autograd.grad(full.sum(), list(tiny_lm.parameters()))
    assert torch.allclose(fast, full, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(grads_fast, grads_full, strict=True))


def test_packed_forget_retain_forward_equals_two_forwards(tiny_lm, tokenizer, corpus):
    from genforget.lm.batches import concat_batches

    collate = Collator(tokenizer.pad_token_id)
    fb = collate([tokenize_example(ex, tokenizer) for ex in corpus.unlearn_examples("forget")[:3]])
    rb = collate([tokenize_example(ex, tokenizer) for ex in corpus.full_text_examples("retain")[:5]])
    packed = sequence_scores(tiny_lm, concat_batches(fb, rb, tokenizer.pad_token_id))
    f, r = sequence_scores(tiny_lm, fb), sequence_scores(tiny_lm, rb)
    assert torch.allclose(packed.logp, torch.cat([f.logp, r.logp]), atol=1e-4)
    assert torch.allclose(packed.nll, torch.cat([f.nll, r.nll]), atol=1e-5)
