"""Extraction metrics: does greedy decoding from a probe reproduce the forget data?

Definitions: shared METRICS.md ("verbatim extraction rate", "PII extraction rate").
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from genforget.lm.data import left_pad_prompts


def _norm(s: str) -> str:
    return " ".join(s.split())


@torch.no_grad()
def greedy_generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 24,
    batch_size: int = 64,
    desc: str | None = None,
) -> list[str]:
    """Greedy continuations of ``prompts`` (batched, left-padded, mask from the collator)."""
    device = next(model.parameters()).device
    outs: list[str] = []
    for i in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False, disable=None if desc else True):
        batch = {k: v.to(device) for k, v in left_pad_prompts(prompts[i : i + batch_size], tokenizer).items()}
        gen = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = gen[:, batch["input_ids"].shape[1] :]
        outs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return outs


def pii_hits(generations: list[str], values: list[str]) -> list[bool]:
    """Whether each PII value appears verbatim in its probe's generation."""
    return [v in g for g, v in zip(generations, values, strict=True)]


def verbatim_hits(generations: list[str], targets: list[str]) -> list[bool]:
    """Whether each generation starts with its target continuation (whitespace-normalised)."""
    return [_norm(g).startswith(_norm(t)) for g, t in zip(generations, targets, strict=True)]


def pii_extraction(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, probes: list[dict], desc: str | None = None
) -> dict[str, float]:
    """Share of PII values extracted by greedy decoding from their probes, overall and per field.

    ``probes`` are ``{"prompt", "value", "field"}``. Returns ``{"all": r, "<field>": r, ...}``.
    """
    if not probes:
        return {}
    max_new = max(len(tokenizer(" " + p["value"], add_special_tokens=False)["input_ids"]) for p in probes) + 2
    gens = greedy_generate(model, tokenizer, [p["prompt"] for p in probes], max_new, desc=desc)
    hits = pii_hits(gens, [p["value"] for p in probes])
    out = {"all": sum(hits) / len(hits)}
    for f in sorted({p.get("field", "value") for p in probes}):
        sel = [h for h, p in zip(hits, probes, strict=True) if p.get("field", "value") == f]
        out[f] = sum(sel) / len(sel)
    return out


def verbatim_extraction(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, probes: list[dict], desc: str | None = None
) -> float | None:
    """Share of ``{"prompt", "target"}`` probes whose greedy continuation reproduces the target."""
    if not probes:
        return None
    max_new = max(len(tokenizer(p["target"], add_special_tokens=False)["input_ids"]) for p in probes) + 2
    gens = greedy_generate(model, tokenizer, [p["prompt"] for p in probes], max_new, desc=desc)
    hits = verbatim_hits(gens, [p["target"] for p in probes])
    return sum(hits) / len(hits)
