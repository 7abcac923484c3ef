"""Extraction metrics: does decoding from a probe reproduce the forget data?

Definitions: docs/metrics.md ("verbatim extraction rate", "PII extraction rate", "any of k").
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from genforget.lm.data import left_pad_prompts
from genforget.lm.specials import pad_id


def _norm(s: str) -> str:
    return " ".join(s.split())


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 24,
    batch_size: int = 64,
    num_samples: int = 0,
    seed: int = 0,
    desc: str | None = None,
) -> list[str] | list[list[str]]:
    """Greedy continuations (``num_samples=0``), or ``num_samples`` sampled ones per prompt
    (temperature 1), batched with left padding and the mask from the collator."""
    device = next(model.parameters()).device
    outs: list = []
    if num_samples:
        torch.manual_seed(seed)
    for i in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False, disable=None if desc else True):
        batch = {k: v.to(device) for k, v in left_pad_prompts(prompts[i : i + batch_size], tokenizer).items()}
        gen = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=bool(num_samples),
            num_return_sequences=max(1, num_samples),
            top_k=0 if num_samples else None,
            pad_token_id=pad_id(tokenizer),
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(gen[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        if num_samples:
            outs.extend(texts[j : j + num_samples] for j in range(0, len(texts), num_samples))
        else:
            outs.extend(texts)
    return outs


def target_budget(tokenizer: PreTrainedTokenizerBase, targets: list[str], extra: int = 2) -> int:
    """New tokens needed to reproduce the longest target (plus a little slack)."""
    return (
        max(len(tokenizer(" " + t.lstrip(), add_special_tokens=False)["input_ids"]) for t in targets) + extra
    )


def pii_hits(generations: list[str], values: list[str]) -> list[bool]:
    """Whether each PII value appears verbatim in its probe's generation."""
    return [v in g for g, v in zip(generations, values, strict=True)]


def verbatim_hits(generations: list[str], targets: list[str]) -> list[bool]:
    """Whether each generation starts with its target continuation (whitespace-normalised)."""
    return [_norm(g).startswith(_norm(t)) for g, t in zip(generations, targets, strict=True)]


def rates_by_field(hits: list[bool], probes: list[dict]) -> dict[str, float]:
    """``{"all": rate, "<field>": rate, ...}`` over PII probe hits."""
    out = {"all": sum(hits) / len(hits)}
    for f in sorted({p.get("field", "value") for p in probes}):
        sel = [h for h, p in zip(hits, probes, strict=True) if p.get("field", "value") == f]
        out[f] = sum(sel) / len(sel)
    return out
