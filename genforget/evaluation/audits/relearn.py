"""Relearning audit: fine-tune a copy of the unlearned model on part of the forget set.

If a few steps on *some* forgotten examples bring back the *others* too, the knowledge was only
suppressed, not removed (Lynch et al. 2024; Hu et al. 2024). So the forget set is split: the
attack fine-tunes on one slice and recovery is measured on the held-out slice it never saw.
"""

from __future__ import annotations

import random

import torch
from transformers import PreTrainedTokenizerBase

from genforget.evaluation.audits.quantize import merged_copy
from genforget.lm.data import Collator, tokenize_example
from genforget.loop import shuffled_batches


def split_for_relearning(examples: list, fraction: float = 0.5, seed: int = 0) -> tuple[list, list]:
    """Deterministic ``(attack, held_out)`` split of ``examples`` (any items, e.g. ``Person``s).

    ``attack`` holds about ``fraction`` of the items and both slices are non-empty when there
    are at least two; each slice keeps the input order so results do not depend on the shuffle.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1) (got {fraction})")
    n = len(examples)
    if n < 2:  # nothing to hold out: everything goes to the attack
        return list(examples), []
    k = min(n - 1, max(1, round(n * fraction)))
    chosen = set(random.Random(seed).sample(range(n), k))
    attack = [ex for i, ex in enumerate(examples) if i in chosen]
    held_out = [ex for i, ex in enumerate(examples) if i not in chosen]
    return attack, held_out


class Relearner:
    """A copy of ``model`` that an attacker fine-tunes step by step: AdamW, next-token NLL on the
    target tokens of ``examples`` (``{"text", "spans"}`` / ``{"prompt", "target"}``), batches
    walked through shuffled epochs so every example is seen before any is repeated.

    ``model`` is untouched; a ``PeftModel`` is merged (in the copy) so the attack can move every
    weight, as an attacker holding the released weights would. :meth:`train` can be called again
    to continue, which is how the relearn-speed audit measures a ladder of budgets on one copy.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        examples: list[dict],
        learning_rate: float = 1e-3,
        batch_size: int = 8,
        seed: int = 0,
        max_length: int = 512,
    ) -> None:
        if not examples:
            raise ValueError("relearning needs at least one example")
        torch.manual_seed(seed)
        self.model = merged_copy(model)
        # Merged LoRA bases (and frozen models) come with requires_grad=False; the attacker trains all.
        self.model.requires_grad_(True)
        self.feats = [tokenize_example(ex, tokenizer, max_length) for ex in examples]
        self.collate = Collator(tokenizer)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=learning_rate)
        self.batches = shuffled_batches(len(self.feats), batch_size, torch.Generator().manual_seed(seed))
        self.steps_done = 0

    def train(self, steps: int) -> torch.nn.Module:
        """``steps`` more optimizer steps; returns the copy in eval mode."""
        device = next(self.model.parameters()).device
        self.model.train()
        for _ in range(steps):
            take = next(self.batches)
            batch = {k: v.to(device) for k, v in self.collate([self.feats[i] for i in take]).items()}
            loss = self.model(**batch).loss  # labels are -100 outside the targets
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        self.steps_done += steps
        self.model.eval()
        return self.model


def relearn_copy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    steps: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    max_length: int = 512,
) -> torch.nn.Module:
    """A copy of ``model`` fine-tuned for ``steps`` steps on ``examples`` (see :class:`Relearner`).
    ``model`` is untouched. Returns the copy in eval mode."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    return Relearner(model, tokenizer, examples, learning_rate, batch_size, seed, max_length).train(steps)
