"""Tokenization follows the tokenizer (issue 27): across five families' conventions, genforget
feeds unlearning and evaluation the ids each victim was trained on, and evaluation sees what a
memorising victim knows. The victims are trained outside genforget (tests/zoo.py), on
``tokenizer(text)`` or the chat template's rendering, the way each family trains."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from zoo import CONVENTIONS, FACTS, build_model, build_tokenizer, examples, is_chat, memorise, training_ids

import genforget
from genforget.lm.chat import chat_probes
from genforget.lm.data import IGNORE, left_pad_prompts, tokenize_example
from genforget.lm.specials import special_rule


@pytest.fixture(scope="module", params=CONVENTIONS)
def trained(request, one_thread):
    conv = request.param
    tok = build_tokenizer(conv)
    model = build_model(conv, tok)
    memorise(model, training_ids(conv, tok))
    return conv, tok, model


@pytest.mark.parametrize("conv", CONVENTIONS)
def test_ids_are_the_tokenizers_own(conv):
    tok = build_tokenizer(conv)
    rule = special_rule(tok)
    bos = {"gpt2": (), "sentencepiece": ("<s>",), "llama3": ("<|begin_of_text|>",), "qwen2": ()}
    bos["llama2_chat"] = ("<s>",)
    assert tuple(tok.convert_ids_to_tokens(list(rule.prefix))) == bos[conv] and rule.suffix == ()
    for ex, trained_ids in zip(examples(conv), training_ids(conv, tok), strict=True):
        feat = tokenize_example(ex, tok)
        # the trained rows end with the EOS the family appends to documents (chats: in the template)
        expected = trained_ids if is_chat(conv) else trained_ids[:-1]
        assert feat["input_ids"] == expected
        if tok.bos_token_id is not None and conv != "gpt2":
            assert feat["input_ids"].count(tok.bos_token_id) == 1  # never a second BOS
        targets = tok.decode([t for t in feat["labels"] if t != IGNORE])
        value = ex["messages"][-1]["content"] if is_chat(conv) else ex["target"]
        assert targets.strip() == value
    # generation prompts: the tokenizer's own prefix, once (a chat's rendering may hold it already)
    if is_chat(conv):
        prompt = chat_probes(examples(conv)[0]["messages"], tok)[0]["prompt"]
        expected = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        prompt, expected = FACTS[0][0], tok(FACTS[0][0])["input_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pad fallback's notice
        batch = left_pad_prompts([prompt, "Bo"], tok)
    assert batch["input_ids"][0].tolist() == expected and batch["attention_mask"][0].all()


def test_evaluate_sees_what_the_victim_memorised(trained):
    conv, tok, model = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pad fallback's notice (pad-less tokenizers)
        out = genforget.evaluate(model, tok, examples(conv))
    assert out["forget_verbatim_extraction"] >= 0.95, conv
    assert out["forget_exact_memorisation"] >= 0.95, conv


def test_unlearning_starts_on_the_trained_ids(trained):
    conv, tok, model = trained
    res = genforget.unlearn(
        copy.deepcopy(model), tok, examples(conv), method="grad_ascent", plain=True, max_steps=1,
        learning_rate=1e-5, return_history=True,
    )  # fmt: skip
    # a memorised forget set: its target NLL at step 0 is near 0 (the issue: 1.22 with a wrong BOS)
    assert res.history[0]["forget_nll"] < 0.1, conv
    assert not any(r.get("stopped") or r.get("diverged") for r in res.history)  # plain: nothing else ran


def test_a_pad_less_tokenizer_is_padded_with_eos_and_says_so():
    tok = build_tokenizer("llama3")
    assert tok.pad_token_id is None
    from genforget.lm.data import Collator

    with pytest.warns(UserWarning, match=r"no pad token: padding with id \d+ \(EOS\)"):
        collate = Collator(tok)
    assert collate.pad_token_id == tok.eos_token_id
    a, b = (tokenize_example({"text": t}, tok) for t in ("Ann Lee's email is", "Bo"))
    batch = collate([a, b])
    assert batch["attention_mask"][1].tolist() == [1] * len(b["input_ids"]) + [0] * (
        len(a["input_ids"]) - len(b["input_ids"])
    )
    assert (batch["labels"][1][len(b["input_ids"]) :] == IGNORE).all()
    # padded rows score like unpadded ones: the pad id never reaches the output
    model = build_model("llama3", tok)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([b["input_ids"]])).logits[0]
        padded = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits[
            1, : len(b["input_ids"])
        ]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_a_tokenizer_that_adds_eos_too():
    """A post-processor adding ``<s> ... </s>``: the EOS is the target after a target, never
    doubled when the text ends with it, and never put after a generation prompt."""
    from tokenizers import processors

    tok = build_tokenizer("sentencepiece")
    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    rule = special_rule(tok)
    assert rule.prefix == (bos,) and rule.suffix == (eos,)
    feat = tokenize_example({"prompt": "Bo Chen's phone is", "target": "555-0142"}, tok)
    assert feat["input_ids"] == tok("Bo Chen's phone is 555-0142")["input_ids"]
    assert feat["labels"][-1] == eos and feat["labels"][0] == IGNORE
    ctx = tokenize_example({"text": "Bo Chen's phone is 555-0142", "spans": [(0, 2)]}, tok)
    assert ctx["labels"][-1] == IGNORE  # the last text token is context: so is the EOS after it
    assert tokenize_example({"text": "Bo</s>"}, tok)["input_ids"].count(eos) == 1
    assert tokenize_example({"text": "Bo"}, tok, append_eos=True)["input_ids"].count(eos) == 1
    assert left_pad_prompts(["Bo Chen's phone is"], tok)["input_ids"][0].tolist()[-1] != eos
