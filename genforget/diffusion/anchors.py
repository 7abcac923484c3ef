"""Which prompts the anchor term keeps when the user names none.

The anchor term only protects what it samples. A list of generic subjects protects generic
subjects; the concepts most at risk are the ones whose prompts *look like the erased one* — same
template, a word in common — because an edit that keys on the concept's words spills onto them.
So without user prompts the default is the built-in list plus *neighbour prompts*: the concept's
prompt with one content word swapped for a random whole word of the pipeline's own tokenizer
vocabulary ("a photo of a red square" -> "a photo of a red kettle", "a photo of a tidal square").
They keep the template and every other word, so they cover the concept's neighbourhood without
naming anything the concept is not.
"""

from __future__ import annotations

import random
from typing import Any

# Words that frame a prompt rather than say what it shows: never the one swapped out.
FRAME_WORDS = frozenset(
    "a an the of in on at with and or to by for from photo photograph picture image painting drawing "
    "style art rendering".split()
)


def vocabulary_words(tokenizer: Any, min_len: int = 3) -> list[str]:
    """Whole-word tokens of a CLIP-style BPE vocabulary (``word</w>``), alphabetic, lower-case."""
    words = []
    for tok in tokenizer.get_vocab():
        if tok.endswith("</w>"):
            w = tok[: -len("</w>")]
            if len(w) >= min_len and w.isascii() and w.isalpha() and w.islower():
                words.append(w)
    return sorted(words)


def neighbour_prompts(concept: str, tokenizer: Any, n: int, seed: int = 0, max_swaps: int = 1) -> list[str]:
    """Up to ``n`` distinct prompts: ``concept`` with 1..``max_swaps`` content words (not frame
    words) each replaced by a random vocabulary word that is not in the concept. Empty when the
    vocabulary has no whole words (a character-level tokenizer)."""
    words = concept.split()
    content = [i for i, w in enumerate(words) if w.lower() not in FRAME_WORDS] or list(range(len(words)))
    lowered = {w.lower() for w in words}
    pool = [w for w in vocabulary_words(tokenizer) if w not in lowered]
    if not pool or n < 1:
        return []
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        swap = rng.sample(content, rng.randint(1, min(max_swaps, len(content))))
        prompt = " ".join(rng.choice(pool) if i in swap else w for i, w in enumerate(words))
        if prompt not in out and prompt != concept:
            out.append(prompt)
    return out
