"""Masked per-token and per-example log-probabilities of a causal LM.

The LM head and the float32 log-softmax run on target positions only (context and padding carry
no loss), in chunks, so the full-vocabulary float32 log-softmax of the whole batch is never held.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genforget.lm.data import IGNORE
from genforget.scores import Scores

CHUNK_ELEMENTS = 2**26
# Off only to measure what the target-only LM head saves (bench/step_cost.py).
TARGET_ONLY_HEAD = True


def _output_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The LM head (output embedding) of a plain, PEFT, DDP-, DeepSpeed- or compile-wrapped model."""
    m = model
    for attr in ("module", "_orig_mod"):
        while hasattr(m, attr) and isinstance(getattr(m, attr), torch.nn.Module):
            m = getattr(m, attr)
    get = getattr(m, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if isinstance(head, torch.nn.Module) else None


def _chunked_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy of ``logits [N, V]`` in float32, ``CHUNK_ELEMENTS`` at a time."""
    rows = max(1, CHUNK_ELEMENTS // max(1, logits.shape[-1]))
    if rows >= logits.shape[0]:
        return F.cross_entropy(logits.float(), targets, reduction="none")
    return torch.cat(
        [
            F.cross_entropy(logits[i : i + rows].float(), targets[i : i + rows], reduction="none")
            for i in range(0, logits.shape[0], rows)
        ]
    )


def token_logprobs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp [B, T-1], mask [B, T-1])``: log-prob of each next token, mask on target tokens.

    The LM head runs on the target positions only: a forward pre-hook on the model's output
    embedding hands it the hidden states of those positions (``[N, H]``), so the head's matmul
    and the float32 log-softmax skip every context and pad token. The call still goes through
    the (possibly DDP/FSDP/DeepSpeed-wrapped) model, so gradient sync and sharding hooks run as
    usual. Models without a findable head fall back to full logits.
    """
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    head = _output_head(model) if TARGET_ONLY_HEAD else None
    if head is not None:
        # Hidden position t predicts token t + 1; the last position predicts nothing.
        pos = torch.zeros(batch["labels"].shape, dtype=torch.bool, device=mask.device)
        pos[:, :-1] = mask

        def only_targets(module, args):
            return (args[0][pos], *args[1:])

        handle = head.register_forward_pre_hook(only_targets)
        try:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        finally:
            handle.remove()
        n = int(mask.sum()) if logits.dim() == 2 else -1
        if logits.dim() == 2 and logits.shape[0] == n:
            nll = _chunked_nll(logits, labels[mask])
            zeros = torch.zeros(labels.shape, dtype=nll.dtype, device=nll.device)
            return -zeros.masked_scatter(mask, nll), mask
    return _full_token_logprobs(model, batch, labels, mask)


def target_logits(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [N, V], mask [B, T-1])``: the logits that predict each of the ``N`` target
    tokens (``mask``'s True entries, row-major), through the target-only LM head of
    :func:`token_logprobs` where the head can be hooked."""
    mask = batch["labels"][:, 1:] != IGNORE
    head = _output_head(model)
    if head is not None:
        pos = torch.zeros(batch["labels"].shape, dtype=torch.bool, device=mask.device)
        pos[:, :-1] = mask
        handle = head.register_forward_pre_hook(lambda _m, args: (args[0][pos], *args[1:]))
        try:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        finally:
            handle.remove()
        if logits.dim() == 2 and logits.shape[0] == int(mask.sum()):
            return logits, mask
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits[:, :-1][mask], mask


def _full_token_logprobs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every position's logits (the fallback for models whose LM head cannot be hooked)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1]
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
