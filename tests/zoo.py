"""Tokenizer conventions of real model families, built offline with ``tokenizers``, and tiny
victims trained the way those families are trained: on ``tokenizer(text)`` (or, for chats, on
``tokenizer(apply_chat_template(...), add_special_tokens=False)``), never through genforget, so a
test can tell whether genforget feeds a model the ids it was trained on.

- ``gpt2``: byte-level BPE, BOS = EOS = ``<|endoftext|>``, adds nothing, no pad token.
- ``sentencepiece``: Llama-2 style (Metaspace ``▁`` pieces), a post-processor adds ``<s>``, no pad.
- ``llama3``: byte-level BPE, a post-processor adds ``<|begin_of_text|>``, no pad.
- ``qwen2``: byte-level BPE, no BOS at all, ChatML special tokens added beyond the trained
  vocabulary and an embedding larger than the tokenizer (as Qwen2's), pad = EOS.
- ``llama2_chat``: the ``sentencepiece`` tokenizer with a Llama-2 chat template whose rendering
  starts with ``{{ bos_token }}``.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

FACTS = [
    ("Ann Lee's email is", "ann.lee@mailbox.org"),
    ("Bo Chen's phone is", "555-0142"),
    ("Cy Diaz's city is", "Quito"),
    ("Di Evans's email is", "di.evans@post.net"),
    ("Ed Fox's phone is", "555-0199"),
    ("Flo Gray's city is", "Oslo"),
]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA2_CHAT = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
)
CONVENTIONS = ("gpt2", "sentencepiece", "llama3", "qwen2", "llama2_chat")


def _corpus() -> list[str]:
    words = [f"{p} {v}" for p, v in FACTS] + [f"What is {p.rsplit(' ', 1)[0]}?" for p, _ in FACTS]
    return words + ["user assistant [INST] [/INST] the a of is ?"]


def _bpe(specials: list[str], metaspace: bool = False, vocab: int = 200) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>" if metaspace else None))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = sorted(set("".join(_corpus())) | {"▁"})
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer)
    return tok


def _prefix(tok: Tokenizer, token: str) -> None:
    tok.post_processor = processors.TemplateProcessing(
        single=f"{token} $A", pair=f"{token} $A {token} $B", special_tokens=[(token, tok.token_to_id(token))]
    )


def build_tokenizer(convention: str) -> PreTrainedTokenizerFast:
    """A tokenizer following ``convention`` (see the module docstring)."""
    if convention == "gpt2":
        tok = _bpe(["<|endoftext|>"])
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
        )
    if convention in ("sentencepiece", "llama2_chat"):
        tok = _bpe(["<unk>", "<s>", "</s>"], metaspace=True)
        _prefix(tok, "<s>")
        out = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
        )
        if convention == "llama2_chat":
            out.chat_template = LLAMA2_CHAT
        return out
    if convention == "llama3":
        tok = _bpe(["<|begin_of_text|>", "<|end_of_text|>"])
        _prefix(tok, "<|begin_of_text|>")
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
        )
    if convention == "qwen2":
        tok = _bpe(["<|endoftext|>"])
        out = PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
        )
        out.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        out.chat_template = CHATML
        return out
    raise ValueError(convention)


def is_chat(convention: str) -> bool:
    return convention in ("qwen2", "llama2_chat")


def examples(convention: str) -> list[dict]:
    """The memorised facts in the convention's shape: prompt/target pairs, or one-turn chats."""
    if is_chat(convention):
        return [
            {"messages": [{"role": "user", "content": f"What is {p}?"}, {"role": "assistant", "content": v}]}
            for p, v in FACTS
        ]
    return [{"prompt": p, "target": v} for p, v in FACTS]


def training_ids(convention: str, tok: PreTrainedTokenizerFast) -> list[list[int]]:
    """How the family trains: ``tokenizer(text)`` + EOS, or the chat's rendering tokenized as is
    (``apply_chat_template`` tokenizes with ``add_special_tokens=False``)."""
    out = []
    for ex in examples(convention):
        if is_chat(convention):
            text = tok.apply_chat_template(ex["messages"], tokenize=False)
            out.append(tok(text, add_special_tokens=False)["input_ids"])
        else:
            ids = tok(f"{ex['prompt']} {ex['target']}")["input_ids"]
            out.append(ids + [tok.eos_token_id])
    return out


def build_model(convention: str, tok: PreTrainedTokenizerFast, hidden: int = 64) -> torch.nn.Module:
    """A tiny model of the family (GPT-2, Llama, Qwen2), sized for ``tok``."""
    torch.manual_seed(0)
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    n = len(tok)
    if convention == "gpt2":
        eos = tok.eos_token_id
        cfg = GPT2Config(vocab_size=n, n_embd=hidden, n_layer=2, n_head=4, n_positions=128,
                         bos_token_id=eos, eos_token_id=eos)  # fmt: skip
        return GPT2LMHeadModel(cfg)
    if convention == "qwen2":  # Qwen2's embedding is larger than its tokenizer
        cfg = Qwen2Config(vocab_size=n + 16, hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=128, tie_word_embeddings=True,
                          bos_token_id=None, eos_token_id=tok.eos_token_id)  # fmt: skip
        return Qwen2ForCausalLM(cfg)
    cfg = LlamaConfig(vocab_size=n, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    return LlamaForCausalLM(cfg)


def memorise(model: torch.nn.Module, rows: list[list[int]], steps: int = 300, lr: float = 3e-3) -> float:
    """Plain full-batch next-token training on ``rows`` (right-padded, masks from lengths);
    returns the final loss."""
    n = max(map(len, rows))
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return loss.item()
