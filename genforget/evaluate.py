"""``genforget.evaluate``: forgetting, retention and membership metrics of an in-memory model.

Works on a model someone already holds (no save needed), like lm-evaluation-harness's evaluator.
Reports carry numbers only: no generation, prompt or PII value leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from genforget.metrics.extraction import pii_extraction, verbatim_extraction
from genforget.metrics.likelihood import mia_auc, min_k_score, per_token_logprobs, perplexity


@dataclass
class EvalSplit:
    """What to measure on one split.

    Attributes:
        pii_probes: ``{"prompt", "value", "field"}``: is the value extracted from the prompt?
        verbatim_probes: ``{"prompt", "target"}``: is the continuation reproduced exactly?
        texts: ``{"text"}`` (or prompt/target) examples scored for perplexity and membership.
    """

    pii_probes: list[dict] = field(default_factory=list)
    verbatim_probes: list[dict] = field(default_factory=list)
    texts: list[dict] = field(default_factory=list)

    @classmethod
    def from_examples(cls, examples: list[dict] | EvalSplit | None) -> EvalSplit:
        """Sort plain examples by shape: prompt+value -> PII probe, prompt+target -> verbatim
        probe (and scored text), text -> scored text."""
        if examples is None:
            return cls()
        if isinstance(examples, EvalSplit):
            return examples
        split = cls()
        for ex in examples:
            if "prompt" in ex and "value" in ex:
                split.pii_probes.append(ex)
            elif "prompt" in ex and "target" in ex:
                split.verbatim_probes.append(ex)
                split.texts.append(ex)
            elif "question" in ex and "answer" in ex:
                split.verbatim_probes.append(
                    {"prompt": ex["question"], "target": " " + ex["answer"].lstrip()}
                )
                split.texts.append(ex)
            elif "text" in ex:
                split.texts.append(ex)
            else:
                raise ValueError(f"cannot evaluate an example with keys {sorted(ex)}")
        return split


def corpus_split(corpus, split: str) -> EvalSplit:
    """The :class:`EvalSplit` of one split of the built-in PII corpus."""
    return EvalSplit(
        pii_probes=corpus.pii_probes(split),
        verbatim_probes=corpus.passage_probes(split),
        texts=corpus.full_text_examples(split),
    )


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: list[dict] | EvalSplit,
    retain: list[dict] | EvalSplit | None = None,
    holdout: list[dict] | EvalSplit | None = None,
    mia_k: float = 0.4,
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of ``model`` on forget / retain / holdout data (definitions in METRICS.md).

    Returns a flat dict: ``forget_pii_extraction`` (+ ``_<field>``), ``forget_verbatim_extraction``,
    the same for ``retain_``, ``forget_perplexity``, ``retain_perplexity`` and ``mia_min_k_auc``
    (forget vs holdout texts). Metrics whose data is missing are left out.
    """
    was_training = model.training
    model.eval()
    splits = {"forget": EvalSplit.from_examples(forget), "retain": EvalSplit.from_examples(retain)}
    hold = EvalSplit.from_examples(holdout)
    out: dict[str, float] = {}
    token_lp: dict[str, list[torch.Tensor]] = {}
    for name, sp in splits.items():
        desc = f"{name} probes" if progress else None
        pii = pii_extraction(model, tokenizer, sp.pii_probes, desc=desc)
        if pii:
            out[f"{name}_pii_extraction"] = pii.pop("all")
            out.update({f"{name}_pii_extraction_{f}": v for f, v in pii.items()})
        verb = verbatim_extraction(model, tokenizer, sp.verbatim_probes, desc=desc)
        if verb is not None:
            out[f"{name}_verbatim_extraction"] = verb
        if sp.texts:
            token_lp[name] = per_token_logprobs(model, tokenizer, sp.texts)
            out[f"{name}_perplexity"] = perplexity(token_lp[name])
    if hold.texts and "forget" in token_lp:
        hold_lp = per_token_logprobs(model, tokenizer, hold.texts)
        out["mia_min_k_auc"] = mia_auc(
            [min_k_score(t, mia_k) for t in token_lp["forget"]], [min_k_score(t, mia_k) for t in hold_lp]
        )
    model.train(was_training)
    return out
