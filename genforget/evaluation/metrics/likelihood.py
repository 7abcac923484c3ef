"""Likelihood metrics: teacher-forced token statistics, perplexity, min-k % and AUC.

Definitions: docs/metrics.md ("retain loss / perplexity", "min-k%", AUC orientation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from genforget.lm.data import IGNORE, Collator, tokenize_example
from genforget.lm.specials import special_rule


@dataclass
class TokenStats:
    """Teacher-forced statistics of one example's target tokens.

    ``mu``/``sigma`` are the mean and std of log p over the vocabulary at each position (for
    min-k %++); they are only filled when asked for, since they need the full softmax.
    """

    logp: torch.Tensor
    target: torch.Tensor
    argmax: torch.Tensor
    mu: torch.Tensor | None = None
    sigma: torch.Tensor | None = None


@torch.no_grad()
def token_stats(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    batch_size: int = 16,
    max_length: int = 512,
    mu_sigma: bool = False,
    append_eos: bool = False,
) -> list[TokenStats]:
    """Per-example :class:`TokenStats` over each example's target tokens (batched, right-padded).

    ``append_eos``: score the EOS token after each text as a target too (open-unlearning's way)."""
    device = next(model.parameters()).device
    collate = Collator(tokenizer)
    rule = special_rule(tokenizer)  # the BOS/EOS tokenizer(text) adds: what the model saw
    feats = [tokenize_example(ex, tokenizer, max_length, append_eos, rule) for ex in examples]
    out: list[TokenStats] = []
    for i in range(0, len(feats), batch_size):
        batch = {k: v.to(device) for k, v in collate(feats[i : i + batch_size]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        for row, lab in zip(logits, labels, strict=True):
            m = lab != IGNORE
            # Only the target positions of one row in float32: bounded memory for large vocabularies.
            logp_all = torch.log_softmax(row[m].float(), dim=-1)
            target = lab[m]
            st = TokenStats(
                logp=logp_all.gather(-1, target[:, None])[:, 0].cpu(),
                target=target.cpu(),
                argmax=logp_all.argmax(-1).cpu(),
            )
            if mu_sigma:
                st.mu, st.sigma = (t.cpu() for t in token_mu_sigma(logp_all))
            out.append(st)
    return out


def mean_nll(stats: list[TokenStats]) -> list[float]:
    """Per-example mean target-token NLL, L(y|x)."""
    return [-s.logp.mean().item() for s in stats]


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
    from sklearn.metrics import roc_auc_score  # lazily: sklearn costs ~1 s at import

    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, [-s for s in member_scores + nonmember_scores]))


def token_mu_sigma(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position mean and std of log p under p itself, for logits ``[T, V]``.

    μ_t = Σ_v p_v log p_v, σ_t = sqrt(Σ_v p_v (log p_v)² − μ_t²). In float32: bf16 log-probs
    lose the small differences that σ_t is made of.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    # Masked (-inf) logits have p = 0 and log p = -inf; 0 · inf is NaN, the limit is 0.
    logp = torch.where(p > 0, logp, torch.zeros_like(logp))
    mu = (p * logp).sum(-1)
    var = (p * logp.square()).sum(-1) - mu.square()
    return mu, var.clamp_min(0.0).sqrt()
