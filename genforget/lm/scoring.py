"""Masked per-token and per-example log-probabilities of a causal LM.

Per-token NLL comes from ``cross_entropy`` over chunks of rows, so the full-vocabulary float32
log-softmax of the whole batch is never held at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genforget.lm.data import IGNORE
from genforget.scores import Scores

CHUNK_ELEMENTS = 2**26


def token_logprobs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp [B, T-1], mask [B, T-1])``: log-prob of each next token, mask on target tokens."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    safe = labels.masked_fill(~mask, 0)
    nll = torch.empty(labels.shape, dtype=torch.float32, device=logits.device)
    # Chunks of whole rows, or of positions within a row when one row is too long, so that one
    # chunk's float32 logits stay under CHUNK_ELEMENTS: a 128k vocab at batch 8 x 2k tokens would
    # otherwise need 8 GB for the float32 log-softmax alone (and as much again for its gradient).
    n_pos, vocab = labels.shape[1], logits.shape[-1]
    rows = CHUNK_ELEMENTS // max(1, n_pos * vocab)
    if rows >= 1:
        for i in range(0, logits.shape[0], rows):
            chunk = logits[i : i + rows].float()
            nll[i : i + rows] = F.cross_entropy(chunk.transpose(1, 2), safe[i : i + rows], reduction="none")
    else:
        cols = max(1, CHUNK_ELEMENTS // vocab)
        for i in range(logits.shape[0]):
            for j in range(0, n_pos, cols):
                chunk = logits[i, j : j + cols].float()
                nll[i, j : j + cols] = F.cross_entropy(chunk, safe[i, j : j + cols], reduction="none")
    return (-nll) * mask, mask


def scores_from_tokens(logp: torch.Tensor, mask: torch.Tensor) -> Scores:
    """:class:`Scores` from masked token log-probs: ``logp`` = sum, ``nll`` = mean target NLL."""
    n = mask.sum(-1).clamp(min=1)
    total = logp.sum(-1)
    return Scores(logp=total, nll=-total / n, token_logp=logp, token_mask=mask)


def sequence_scores(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Scores:
    """Per-example :class:`Scores` of ``batch`` under ``model``."""
    return scores_from_tokens(*token_logprobs(model, batch))


def min_k_rows(logp: torch.Tensor, mask: torch.Tensor, k: float = 0.4) -> torch.Tensor:
    """Per row, −mean of the lowest ``k`` fraction of target-token log-probs (the min-k % score
    of METRICS.md, on target tokens): what a membership attack reads first."""
    out = torch.empty(logp.shape[0], device=logp.device)
    for i, (row, m) in enumerate(zip(logp.detach(), mask, strict=True)):
        vals = row[m]
        out[i] = -torch.sort(vals).values[: max(1, int(len(vals) * k))].mean()
    return out
