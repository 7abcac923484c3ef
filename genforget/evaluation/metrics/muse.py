"""MUSE memorisation metrics (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for
Language Models", arXiv:2407.06460); definitions in docs/metrics.md.

- VerbMem: ROUGE-L **F1** of the greedy continuation (128 new tokens) of a forget text's first
  ``k`` tokens against its true continuation, averaged over texts.
- KnowMem: ROUGE-L **F1** of the model's greedy answers to questions about the forget (or
  retain) texts against the reference answers, averaged over questions (open-unlearning's MUSE
  configs use F1 for both).
PrivLeak lives with the other membership metrics (:mod:`genforget.evaluation.metrics.mia`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from genforget.evaluation.metrics.extraction import generate
from genforget.evaluation.metrics.text import rouge_l

VERBMEM_NEW_TOKENS = 128
KNOWMEM_NEW_TOKENS = 32
QA_TEMPLATE = "Question: {question}\nAnswer:"


def verbmem_probes(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    prefix_tokens: int = 32,
    continuation_tokens: int = VERBMEM_NEW_TOKENS,
) -> list[dict]:
    """``{"prompt", "target"}`` per text: its first ``prefix_tokens`` tokens (decoded) and the
    next up to ``continuation_tokens`` tokens. Texts not longer than the prefix are skipped."""
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= prefix_tokens:
            continue
        out.append(
            {
                "prompt": tokenizer.decode(ids[:prefix_tokens]),
                "target": tokenizer.decode(ids[prefix_tokens : prefix_tokens + continuation_tokens]),
            }
        )
    return out


def rouge_l_f1_scores(generations: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-item ROUGE-L F1 (stemmed) of each generation against its reference."""
    if len(generations) != len(references):
        raise ValueError(f"{len(generations)} generations but {len(references)} references")
    return [rouge_l(g, r)["f1"] for g, r in zip(generations, references, strict=True)]


def _mean(xs: list[float]) -> float:
    if not xs:
        raise ValueError("no items to score")
    return sum(xs) / len(xs)


@torch.no_grad()
def verbmem(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    probes: Sequence[dict],
    max_new_tokens: int = VERBMEM_NEW_TOKENS,
    batch_size: int = 32,
) -> float:
    """MUSE VerbMem: mean ROUGE-L F1 of greedy continuations of ``probes`` (``{"prompt",
    "target"}``, or MUSE's ``{"prompt", "gt"}``) against their targets."""
    prompts = [p["prompt"] for p in probes]
    targets = [p.get("target", p.get("gt")) for p in probes]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return _mean(rouge_l_f1_scores(gens, targets))


def _answer(generation: str) -> str:
    # The answer is the first line: after it a model trained on the template goes on with the
    # next "Question:", which is not part of the answer.
    return generation.strip().split("\n", 1)[0].strip()


@torch.no_grad()
def knowmem(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    qa: Sequence[dict],
    template: str = QA_TEMPLATE,
    icl: Sequence[dict] = (),
    max_new_tokens: int = KNOWMEM_NEW_TOKENS,
    batch_size: int = 32,
) -> float:
    """MUSE KnowMem: mean ROUGE-L F1 of greedy answers to ``qa`` (``{"question", "answer"}``)
    against the reference answers. Prompts are ``template`` filled with the question, after the
    ``icl`` examples (MUSE's ``*_qa_icl`` few-shot pairs) written as template + answer."""
    shots = "".join(template.format(question=ex["question"]) + " " + ex["answer"] + "\n\n" for ex in icl)
    prompts = [shots + template.format(question=ex["question"]) for ex in qa]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return _mean(rouge_l_f1_scores([_answer(g) for g in gens], [ex["answer"] for ex in qa]))


def muse_metrics(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    verbmem_sets: dict[str, Sequence[dict]] | None = None,
    knowmem_sets: dict[str, Sequence[dict]] | None = None,
    icl: Sequence[dict] = (),
) -> dict[str, float]:
    """``{"<split>_verbmem": ..., "<split>_knowmem": ...}`` for each split given (``forget``,
    ``retain``: the registered names), e.g. from :func:`genforget.data.muse.load_muse`."""
    out = {
        f"{split}_verbmem": verbmem(model, tokenizer, probes)
        for split, probes in (verbmem_sets or {}).items()
    }
    out.update(
        {
            f"{split}_knowmem": knowmem(model, tokenizer, qa, icl=icl)
            for split, qa in (knowmem_sets or {}).items()
        }
    )
    return out
