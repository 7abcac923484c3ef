"""Tokenising unlearning examples and collating them into padded batches.

An example is ``{"text": str, "spans": [(start, end), ...]}``: tokens overlapping a span are
targets, the rest is context (label -100). No ``spans`` means every token is a target;
``{"prompt", "target"}`` pairs are the special case of one span after the prompt, and
``{"messages": [...]}`` chats are rendered with the tokenizer's chat template with spans on the
assistant turns (:mod:`genforget.lm.chat`).
Special tokens follow the tokenizer's own ``add_special_tokens`` rule (:mod:`genforget.lm.specials`):
a BOS only where the tokenizer adds one, never a second one. Attention masks come from sequence
lengths, never from ``ids != pad``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from genforget.lm.specials import SpecialRule, apply_rule, pad_id, prompt_ids, special_rule

IGNORE = -100


def normalise_example(
    ex: dict, tokenizer: PreTrainedTokenizerBase | None = None, chat_template: str | None = None
) -> dict:
    """Turn ``{"prompt","target"}`` / ``{"question","answer"}`` / ``{"text"}`` into text + spans;
    ``{"messages"}`` chats too, rendered with ``tokenizer``'s chat template (or ``chat_template``)."""
    if "messages" in ex:
        from genforget.lm.chat import render_chat

        if tokenizer is None:
            raise ValueError("a chat example ('messages') needs the tokenizer to render its template")
        return render_chat(ex["messages"], tokenizer, chat_template)
    if "text" in ex:
        return {"text": ex["text"], "spans": ex.get("spans")}
    for p, t in (("prompt", "target"), ("question", "answer")):
        if p in ex and t in ex:
            prompt, target = ex[p], ex[t]
            if not target.startswith(" ") and not prompt.endswith(" "):
                target = " " + target
            return {"text": prompt + target, "spans": [(len(prompt), len(prompt) + len(target))]}
    raise ValueError(
        f"example has keys {sorted(ex)}; expected 'text' (optionally 'spans'), "
        "'prompt'+'target', 'question'+'answer' or 'messages'"
    )


def tokenize_example(
    ex: dict,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int = 512,
    append_eos: bool = False,
    rule: SpecialRule | None = None,
) -> dict:
    """Token ids and labels for one example, with the special tokens ``tokenizer(text)`` adds.

    The text is encoded without special tokens (so character offsets map spans to tokens) and the
    tokenizer's own prefix/suffix (``rule``, read off the tokenizer when not given) is put around
    it: a BOS for Llama-style tokenizers, nothing for GPT-2 or Qwen2, and nothing a second time
    when the text already starts with it. Prefix tokens are context; a suffix (an EOS some
    tokenizers add) is a target when the text's last token is one.

    ``append_eos``: the EOS token follows the text as one more target (how open-unlearning scores
    TOFU answers: the model must also know where the answer ends); not doubled when already there."""
    ex = normalise_example(ex, tokenizer)
    enc = tokenizer(ex["text"], add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    spans = ex["spans"]
    if spans is None:
        labels = list(ids)
    else:
        labels = [
            t if any(a < e and s < b for s, e in spans) else IGNORE
            for t, (a, b) in zip(ids, offsets, strict=True)
        ]
    pre, _, post = apply_rule(ids, rule or special_rule(tokenizer))
    last_is_target = bool(labels) and labels[-1] != IGNORE
    ids = [*pre, *ids, *post]
    labels = [IGNORE] * len(pre) + labels + (post if last_is_target else [IGNORE] * len(post))
    eos = tokenizer.eos_token_id
    if append_eos and eos is not None and (not ids or ids[-1] != eos):
        ids, labels = [*ids, eos], [*labels, eos]
    elif append_eos and eos is not None:
        labels[-1] = eos  # the text (or the tokenizer) already ends with EOS: score it once
    ids, labels = ids[:max_length], labels[:max_length]
    if all(lab == IGNORE for lab in labels):
        raise ValueError("example has no target token left (empty span or truncated by max_length)")
    return {"input_ids": ids, "labels": labels}


def tokenize_all(
    examples: list[dict], tokenizer: PreTrainedTokenizerBase, max_length: int, name: str = "data"
) -> list[dict]:
    """:func:`tokenize_example` for each example, with its index as ``idx``.

    Longer examples are truncated to ``max_length`` tokens (what the model can be trained on) with
    one warning counting them; an example left with no target token is a ``ValueError`` naming
    its index and the fix. Never prints example text (the forget set is private).
    """
    out, truncated = [], 0
    rule = special_rule(tokenizer)
    for i, ex in enumerate(examples):
        try:
            feat = tokenize_example(ex, tokenizer, max_length, rule=rule)
        except ValueError as e:
            raise ValueError(f"{name} example {i}: {e}; raise --max_length (now {max_length})") from e
        truncated += (
            len(feat["input_ids"]) == max_length
            and len(tokenize_example(ex, tokenizer, 10**9, rule=rule)["input_ids"]) > max_length
        )
        out.append(dict(feat, idx=i))
    if truncated:
        warnings.warn(
            f"{truncated} {name} example(s) longer than max_length={max_length} tokens were truncated",
            stacklevel=2,
        )
    return out


class Collator:
    """Right-pads ``input_ids``/``labels`` and builds the attention mask from lengths.

    Keys other than those two (such as ``idx``) are stacked into tensors. ``pad_token_id``: an
    id or the tokenizer itself (its pad id, else EOS: see :func:`genforget.lm.specials.pad_id`).
    """

    def __init__(self, pad_token_id: int | PreTrainedTokenizerBase | None) -> None:
        if isinstance(pad_token_id, PreTrainedTokenizerBase):
            pad_token_id = pad_id(pad_token_id)
        if pad_token_id is None:
            raise ValueError("Collator needs a pad id: pass the tokenizer (pad falls back to EOS)")
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        n = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), n), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.tensor(f["input_ids"])
            labels[i, :k] = torch.tensor(f["labels"])
            mask[i, :k] = 1
        batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        for key in features[0]:
            if key not in batch:
                batch[key] = torch.tensor([f[key] for f in features])
        return batch


def left_pad_prompts(prompts: list[str], tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
    """Left-padded prompt batch for batched greedy generation, each prompt with the prefix (BOS)
    the tokenizer adds itself (:func:`genforget.lm.specials.prompt_ids`)."""
    rule = special_rule(tokenizer)
    rows = [prompt_ids(p, tokenizer, rule) for p in prompts]
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), pad_id(tokenizer), dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, n - len(r) :] = torch.tensor(r)
        mask[i, n - len(r) :] = 1
    return {"input_ids": ids, "attention_mask": mask}
