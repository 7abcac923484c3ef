"""The tokenizer's own special-token rule, and the pad id of tokenizers that have no pad token.

A model is trained on ``tokenizer(text)``: whatever the tokenizer itself adds with
``add_special_tokens=True`` (a ``<s>`` or ``<|begin_of_text|>`` before the text for Llama-style
tokenizers, nothing for GPT-2 and Qwen2, an EOS after it for a few) is part of what it saw.
Unlearning and evaluation must feed it the same ids, so this module reads that rule off the
tokenizer instead of assuming one: it encodes a probe text with and without special tokens and
takes what the first adds around the second. Text that already holds the rule's tokens (a
rendered chat template that starts with ``<s>``) gets no second copy.

Padding: genforget builds every attention mask and label mask from sequence lengths, never from
``ids == pad``, so the pad id's value never reaches the model's output. A tokenizer without a pad
token (Llama-3, GPT-2, SentencePiece Llama-2) is padded with its EOS id, the reference toolkit's
choice, instead of adding a token: a new row in the embedding would change the model's weights
(and its hash), cannot be added to a 4-bit embedding, and would make an adapter depend on a
resized base. The choice is reported once per tokenizer and recorded in run records.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

_PROBES = ("a", "Hello world", "0")  # short texts: the rule is what surrounds their ids


@dataclass(frozen=True)
class SpecialRule:
    """Ids the tokenizer puts before (``prefix``) and after (``suffix``) every text."""

    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()

    def describe(self, tokenizer: PreTrainedTokenizerBase) -> str:
        """``"<s> + text"``-style summary for run records (token strings, never data)."""
        pre = "".join(tokenizer.convert_ids_to_tokens(list(self.prefix)))
        post = "".join(tokenizer.convert_ids_to_tokens(list(self.suffix)))
        return " + ".join(p for p in (pre, "text", post) if p)


def special_rule(tokenizer: PreTrainedTokenizerBase) -> SpecialRule:
    """What ``tokenizer`` adds around a text when ``add_special_tokens=True``.

    Read by encoding a probe with and without special tokens (the post-processor, or a slow
    tokenizer's ``build_inputs_with_special_tokens``, decides; attributes such as
    ``add_bos_token`` are not trusted on their own, since not every tokenizer class honours them).
    """
    for probe in _PROBES:
        plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
        if not plain:  # a vocabulary that drops the probe: try the next one
            continue
        with_sp = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
        n = len(plain)
        for i in range(len(with_sp) - n + 1):
            if with_sp[i : i + n] == plain:
                return SpecialRule(tuple(with_sp[:i]), tuple(with_sp[i + n :]))
    warnings.warn(
        f"{type(tokenizer).__name__}: could not tell which special tokens it adds (its ids of a probe "
        "text with special tokens do not contain those without); adding none",
        stacklevel=2,
    )
    return SpecialRule()


def apply_rule(ids: list[int], rule: SpecialRule, prompt: bool = False) -> tuple[list[int], int, list[int]]:
    """``(prefix, n_text, suffix)``: the ids to put before and after ``ids`` (a text encoded
    without special tokens) to match ``tokenizer(text)``; none where the text already starts or
    ends with them (a rendered chat template). ``prompt``: no suffix (a prompt is continued)."""
    pre = list(rule.prefix)
    if pre and ids[: len(pre)] == pre:
        pre = []
    post = [] if prompt else list(rule.suffix)
    if post and len(ids) >= len(post) and ids[-len(post) :] == post:
        post = []
    return pre, len(ids), post


def prompt_ids(prompt: str, tokenizer: PreTrainedTokenizerBase, rule: SpecialRule | None = None) -> list[int]:
    """The ids a prompt is generated from: the tokenizer's prefix (BOS) + the prompt, no suffix."""
    rule = rule or special_rule(tokenizer)
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    pre, _, _ = apply_rule(ids, rule, prompt=True)
    return pre + ids


_REPORTED: weakref.WeakSet = weakref.WeakSet()  # tokenizers whose pad fallback was reported


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id to pad batches with: the pad token, else EOS (reported once), else 0.

    The value is never attended to nor scored (masks come from lengths), so any id is correct;
    EOS is chosen so a decoded, padded generation drops it as a special token.
    """
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    if tokenizer not in _REPORTED:
        _REPORTED.add(tokenizer)
        warnings.warn(
            f"tokenizer has no pad token: padding with id {fallback} "
            f"({'EOS' if tokenizer.eos_token_id is not None else 'no EOS either'}); attention masks "
            "and labels come from sequence lengths, so padded positions are never attended or scored",
            stacklevel=2,
        )
    return int(fallback)


def padding_record(tokenizer: PreTrainedTokenizerBase) -> str:
    """How batches are padded, for run records: ``"pad token <id>"`` or ``"eos <id> (no pad token)"``."""
    if tokenizer.pad_token_id is not None:
        return f"pad token {tokenizer.pad_token_id}"
    if tokenizer.eos_token_id is not None:
        return f"eos {tokenizer.eos_token_id} (the tokenizer has no pad token)"
    return "id 0 (the tokenizer has neither a pad nor an EOS token)"


def tokenization_record(tokenizer: PreTrainedTokenizerBase) -> dict[str, str]:
    """``{"special_tokens", "padding"}``: how texts met the model, for reports and run records."""
    return {
        "special_tokens": special_rule(tokenizer).describe(tokenizer),
        "padding": padding_record(tokenizer),
    }
