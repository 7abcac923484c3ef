"""WHP, "Who's Harry Potter? Approximate Unlearning in LLMs" (Eldan & Russinovich 2023,
arXiv:2310.02238): the logit part.

1. A *reinforced* model: a LoRA adapter fine-tuned further on the forget text
   (``whp_reinforce_steps`` steps), so the baseline is the same model under ``disable_adapter()``
   and no copy is kept. The adapter is removed afterwards; the base weights are untouched.
2. Generic predictions: ``v_generic = v_base - alpha * ReLU(v_reinforced - v_base)`` on the
   logits at every target position: tokens the reinforced model likes *more* than the baseline
   are the forget text's idiosyncrasies and are pushed down.
3. Fine-tune toward ``argmax v_generic`` (the paper's hard labels) with the usual NLL, plus the
   retain NLL (``retain_weight``; 0 gives the paper's setting, which has no retain term).

Left out: the paper's anchored-term dictionary, built with GPT-4, and its translation of the
forget text into generic terms. :meth:`WHP.replace_terms` is the pluggable hook for it (default:
none): a subclass maps anchored terms to generic ones and the labels of those tokens are replaced
where both tokenise to the same length. The paper's token-alignment of unequal lengths is not done.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.lm.data import IGNORE
from genforget.methods.base import Method, PrepareContext
from genforget.scores import Scores


def generic_logits(base: torch.Tensor, reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """``v_base - alpha * ReLU(v_reinforced - v_base)`` (the paper's Eq. 1)."""
    return base - alpha * F.relu(reinforced - base)


@dataclass
class WHPConfig(UnlearnConfig):
    """WHP's hyperparameters."""

    whp_alpha: float = arg(5.0, "WHP: v_generic = v_base - alpha * ReLU(v_reinforced - v_base)")
    whp_reinforce_steps: int = arg(
        20, "WHP: steps of LoRA fine-tuning on the forget set for the reinforced model"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("whp_alpha", "whp_reinforce_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")


class WHP(Method):
    """``loss = mean(nll(argmax v_generic | text)) + retain_weight * mean(nll_retain)``.

    Subclass and set ``anchor_terms = {"Hermione": "Jennifer", ...}`` to add term replacement.
    """

    config_class = WHPConfig

    modalities = ("lm",)
    anchor_terms: dict[str, str] = {}

    def replace_terms(self, feat: dict, tokenizer) -> dict:
        """Hook: labels of anchored-term tokens replaced by the generic term's tokens."""
        ids, labels = feat["input_ids"], list(feat["labels"])
        for term, generic in self.anchor_terms.items():
            a = tokenizer(" " + term, add_special_tokens=False)["input_ids"]
            b = tokenizer(" " + generic, add_special_tokens=False)["input_ids"]
            if len(a) != len(b):
                continue  # unequal lengths need the paper's alignment, which is left out
            for i in range(len(ids) - len(a) + 1):
                if ids[i : i + len(a)] == a:
                    for j, tok in enumerate(b):
                        if labels[i + j] != IGNORE:
                            labels[i + j] = tok
        return {**feat, "labels": labels}

    def prepare(self, ctx: PrepareContext) -> None:
        from genforget.lm.method_hooks import reinforced_logits

        cfg = self.config
        new_feats = []
        for feat, (base, reinforced) in zip(
            ctx.forget_feats, reinforced_logits(ctx, cfg.whp_reinforce_steps), strict=True
        ):
            # Logits at position t predict token t+1, so they relabel target t+1.
            generic = generic_logits(base, reinforced, cfg.whp_alpha).argmax(-1).tolist()
            labels = [feat["labels"][0]] + [
                g if lab != IGNORE else IGNORE for g, lab in zip(generic, feat["labels"][1:], strict=False)
            ]
            new_feats.append(self.replace_terms({**feat, "labels": labels}, ctx.tokenizer))
        changed = sum(
            a != b
            for f, n in zip(ctx.forget_feats, new_feats, strict=True)
            for a, b in zip(f["labels"], n["labels"], strict=True)
        )
        ctx.info.update(whp_relabelled_tokens=changed)
        ctx.forget_feats = new_feats

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return forget.nll.mean()
