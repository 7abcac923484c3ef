"""Likelihood metrics: perplexity and min-k % membership inference.

Definitions: shared METRICS.md ("retain loss / perplexity", "min-k%", AUC orientation).
"""

from __future__ import annotations

import math

import torch
from sklearn.metrics import roc_auc_score
from transformers import PreTrainedTokenizerBase

from genforget.lm.data import Collator, tokenize_example
from genforget.lm.scoring import token_logprobs


@torch.no_grad()
def per_token_logprobs(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    batch_size: int = 32,
    max_length: int = 512,
) -> list[torch.Tensor]:
    """Target-token log-probs of each example, as a list of 1-D tensors."""
    device = next(model.parameters()).device
    collate = Collator(tokenizer.pad_token_id)
    feats = [tokenize_example(ex, tokenizer, max_length) for ex in examples]
    out: list[torch.Tensor] = []
    for i in range(0, len(feats), batch_size):
        batch = {k: v.to(device) for k, v in collate(feats[i : i + batch_size]).items()}
        logp, mask = token_logprobs(model, batch)
        out.extend(row[m].float().cpu() for row, m in zip(logp, mask, strict=True))
    return out


def perplexity(token_logps: list[torch.Tensor]) -> float:
    """exp of the mean over examples of each example's mean target-token NLL."""
    return math.exp(sum(-t.mean().item() for t in token_logps) / len(token_logps))


def min_k_score(token_logp: torch.Tensor, k: float = 0.4) -> float:
    """Min-k % attack score (Shi et al. 2024): −mean of the lowest ``k`` fraction of log-probs.

    Lower means more member-like.
    """
    n = max(1, int(len(token_logp) * k))
    return -torch.sort(token_logp).values[:n].mean().item()


def mia_auc(member_scores: list[float], nonmember_scores: list[float]) -> float:
    """ROC AUC of separating members from non-members by a loss-like score (lower = member).

    Oriented so 1.0 = members perfectly recognised, 0.5 = members look like never-seen data.
    """
    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, [-s for s in member_scores + nonmember_scores]))
