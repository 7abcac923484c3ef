"""Scoring profiles: how answers are scored and generated, so numbers can sit beside a peer's.

Every report names the profile it used (``details.scoring``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scoring:
    """How answers are scored and generated; two profiles, named in every report.

    ``genforget`` (default): the answer's own tokens only, zlib over the whole scored text, QA
    generation up to the longest answer + 8 tokens. It measures what the model knows of the
    answer, not of where it stops, and it is cheap. ``open_unlearning``: the reference toolkit's
    choices, to reproduce its published numbers: the EOS token after each answer is a target
    (probability, truth ratio, LOSS, zlib), zlib compresses the answer alone, and QA answers are
    generated up to 200 new tokens (TOFU's setting).
    """

    name: str
    append_eos: bool
    zlib_on_answer: bool
    qa_max_new_tokens: int | None  # None: the longest reference answer + 8

    def describe(self) -> str:
        eos = "EOS scored after each answer" if self.append_eos else "answer tokens only (no EOS)"
        z = "zlib over the answer" if self.zlib_on_answer else "zlib over the scored text"
        gen = (
            f"QA generation up to {self.qa_max_new_tokens} new tokens"
            if self.qa_max_new_tokens
            else "QA generation up to the longest answer + 8 tokens"
        )
        return f"{self.name}: {eos}; {z}; {gen}"


SCORINGS = {
    "genforget": Scoring("genforget", append_eos=False, zlib_on_answer=False, qa_max_new_tokens=None),
    "open_unlearning": Scoring(
        "open_unlearning", append_eos=True, zlib_on_answer=True, qa_max_new_tokens=200
    ),
}


def get_scoring(name: str) -> Scoring:
    """The :class:`Scoring` profile named ``name`` (``genforget`` or ``open_unlearning``)."""
    if name not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)} (got {name!r})")
    return SCORINGS[name]
