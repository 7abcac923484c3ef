"""What an evaluation reads: :class:`EvalSplit` (one split's examples, probes, QA and chunks),
built from the built-in corpus or from examples, with chats rendered through the model's template."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvalSplit:
    """What to measure on one split.

    Attributes:
        pii_probes: ``{"prompt", "value", "field"}``: is the value extracted from the prompt?
        verbatim_probes: ``{"prompt", "target"}``: is the continuation reproduced exactly?
        texts: ``{"text"}`` (or prompt/target) examples scored for perplexity and membership.
        truth_items: ``{"question", "answer", "perturbed_answer": [...]}`` (+ ``paraphrased_answer``;
            without one, as in TOFU's real-authors and world-facts sets, the answer itself is the
            true answer the wrong ones are compared with).
        qa: ``{"question", "answer"}`` pairs answered by greedy decoding (ROUGE) and scored.
        verbmem: MUSE VerbMem probes ``{"prompt", "target"}`` -> ``{split}_verbmem``.
        chunks: texts (MUSE's chunked ``raw`` texts) cut with the model's tokenizer into VerbMem
            probes: the first ``CHUNK_PREFIX_TOKENS`` tokens, then the next 128 as the target.
        knowmem: MUSE KnowMem questions ``{"question", "answer"}`` (+ ``template`` / ``icl`` keys
            on the first item) -> ``{split}_knowmem``.
        chats: ``{"messages": [...]}`` conversations; each assistant turn becomes a verbatim probe
            and a scored text, rendered with the evaluated model's chat template
            (:func:`genforget.lm.chat.chat_probes`).
        adversarial: probes with a ``family`` or people to build them from
            (:mod:`genforget.evaluation.metrics.adversarial`) -> ``{split}_adversarial_<family>``.
    """

    pii_probes: list[dict] = field(default_factory=list)
    verbatim_probes: list[dict] = field(default_factory=list)
    texts: list[dict] = field(default_factory=list)
    truth_items: list[dict] = field(default_factory=list)
    qa: list[dict] = field(default_factory=list)
    verbmem: list[dict] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    knowmem: list[dict] = field(default_factory=list)
    chats: list[dict] = field(default_factory=list)
    adversarial: list[dict] = field(default_factory=list)

    @classmethod
    def from_examples(cls, examples: Any) -> EvalSplit:
        """Sort plain examples by shape: prompt+value -> PII probe; prompt+target -> verbatim
        probe and scored text; question+answer (+perturbations) -> QA (and truth item); text ->
        scored text."""
        if examples is None:
            return cls()
        if isinstance(examples, EvalSplit):
            return examples
        if not isinstance(examples, list):  # a Dataset, a dataset dir, a data spec string
            from genforget.data.loaders import as_examples

            examples = as_examples(examples, "evaluation data")
        split = cls()
        for ex in examples:
            if "messages" in ex:
                split.chats.append(ex)
            elif "prompt" in ex and "value" in ex:
                split.pii_probes.append(ex)
            elif "prompt" in ex and "target" in ex:
                split.verbatim_probes.append(ex)
                split.texts.append(ex)
            elif "question" in ex and "answer" in ex:
                split.qa.append(ex)
                split.texts.append({"question": ex["question"], "answer": ex["answer"]})
                if ex.get("perturbed_answer"):
                    split.truth_items.append(ex)
            elif "text" in ex:
                split.texts.append(ex)
            else:
                raise ValueError(f"cannot evaluate an example with keys {sorted(ex)}")
        return split


CHUNK_PREFIX_TOKENS = 32  # MUSE's VerbMem prompt length on its chunked texts


def corpus_split(corpus, split: str) -> EvalSplit:
    """The :class:`EvalSplit` of one split of the built-in PII corpus."""
    return EvalSplit(
        pii_probes=corpus.pii_probes(split),
        verbatim_probes=corpus.passage_probes(split),
        texts=corpus.full_text_examples(split),
        truth_items=corpus.truth_items(split),
    )


def with_chats_rendered(sp: EvalSplit, tok, chat_template: str | None = None) -> EvalSplit:
    """``sp`` with its chats turned into verbatim probes and scored texts for ``tok``'s template."""
    if not sp.chats:
        return sp
    from genforget.lm.chat import chat_probes

    probes = []
    for i, ex in enumerate(sp.chats):
        try:
            probes += chat_probes(ex["messages"], tok, chat_template)
        except ValueError as e:
            raise ValueError(f"chat example {i}: {e}") from e
    return dataclasses.replace(
        sp, chats=[], verbatim_probes=sp.verbatim_probes + probes, texts=sp.texts + probes
    )
