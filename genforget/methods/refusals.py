""" "I don't know"-style refusals for the IdK methods (TOFU, Maini et al. 2024), written for this
project (not copied from TOFU's ``idontknow.jsonl``), and the prompt/answer split they replace.

Each forget example becomes ``(prompt, answer)``: a prompt+target pair keeps its prompt; a text
with spans is cut at the first span; a plain text (every token a target) is cut after its first
half of words, at most :data:`PLAIN_PROMPT_WORDS` words, so that a refusal replaces the rest.
"""

from __future__ import annotations

import random

from genforget.lm.data import normalise_example

REFUSALS: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information on that.",
    "I can't say.",
    "That is not something I know.",
    "I don't have an answer to that.",
    "I'm afraid I don't know.",
    "I couldn't tell you.",
    "I have no idea.",
    "Sorry, I don't know that.",
    "I'm unable to answer that.",
    "That's beyond what I know.",
    "I don't have that information.",
    "I'm not aware of that.",
    "I really can't say.",
    "No idea, sorry.",
    "I don't recall anything about that.",
    "I can't help with that one.",
    "That isn't something I can answer.",
    "I'm not familiar with that.",
    "I wish I knew, but I don't.",
    "I honestly don't know.",
    "I have nothing to go on there.",
    "That's unknown to me.",
    "I can't answer that question.",
    "I don't have any details about that.",
    "Nothing comes to mind.",
    "I'm drawing a blank on that.",
    "I can't provide that.",
    "I don't know the answer.",
    "I'm not the right source for that.",
    "That's not something I have details on.",
    "I'd only be guessing, so I won't.",
    "I can't be sure, so I'll say I don't know.",
    "I have no knowledge of that.",
    "Unfortunately, I don't know.",
    "I'm not able to tell you that.",
    "I lack the information to answer.",
    "I don't remember that.",
    "That's outside what I know.",
    "I'm uncertain about that.",
    "I can't recall.",
    "I don't have a clue.",
    "That escapes me.",
    "I'm not in a position to say.",
    "There's nothing I can tell you about that.",
    "I'd rather not guess; I don't know.",
    "I haven't got an answer for that.",
    "I don't know anything about that.",
    "That one I can't answer.",
    "Sorry, that's not something I know about.",
    "I can't give you an answer there.",
    "I'm not sure, I'm afraid.",
    "I have no way of knowing that.",
    "My knowledge doesn't cover that.",
)

PLAIN_PROMPT_WORDS = 32


def split_prompt(ex: dict) -> tuple[str, str]:
    """``(prompt, answer)`` of an example: where a refusal would start and what it replaces."""
    norm = normalise_example(ex)
    text, spans = norm["text"], norm["spans"]
    if spans:
        start = min(s for s, _ in spans)
        return text[:start].rstrip(), text[start:].strip()
    words = text.split()
    k = min(len(words) // 2, PLAIN_PROMPT_WORDS)
    return " ".join(words[:k]), " ".join(words[k:])


def refusal_pairs(examples: list[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(answered, refused)``: the rejected and the preferred side of each forget example.

    ``refused`` is the prompt (see :func:`split_prompt`) + a refusal. ``answered`` is the example
    itself when it has spans or a prompt (its targets are what is private), else the plain text
    cut at the same place as its refusal.

    One refusal is drawn per example with ``seed``, fixed for the run (TOFU draws one per step;
    fixing it lets the reference log-probs of the refusals be cached).
    """
    rng = random.Random(seed)
    answered, refused = [], []
    for ex in examples:
        prompt, answer = split_prompt(ex)
        norm = normalise_example(ex)
        # Spans already name what is private (the rest of the text is shared context): keep them
        # as the answered side. A plain text is cut like its refusal.
        answered.append(norm if norm["spans"] else {"prompt": prompt, "target": answer})
        refused.append({"prompt": prompt, "target": rng.choice(REFUSALS)})
    return answered, refused
