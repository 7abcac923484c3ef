"""Scoring profiles: how answers are scored and generated, so numbers can sit beside a peer's.

Every report names the profile it used (``details.scoring``). The ``open_unlearning`` profile
follows the reference toolkit's source (locuslab/open-unlearning, ``src/evals/metrics/``), one
convention per field; docs/parity.md cites the line each one comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scoring:
    """How answers are scored and generated; two profiles, named in every report.

    ``genforget`` (default): the answer's own tokens only, zlib over the whole scored text, QA
    generation up to the longest answer + 8 tokens, extraction strength 0 when no suffix matches,
    min-k %++ with σ floored at 1e-6. It measures what the model knows of the answer, not of where
    it stops, and it is cheap.

    ``open_unlearning``: the reference toolkit's choices, to reproduce its numbers:

    - ``append_eos``: the EOS token after each answer is a target of the *sequence-level* scores
      (probability, truth ratio, LOSS, the zlib attack's loss): its ``evaluate_probability``
      averages over every label, and its QA collation appends EOS.
    - ``tokenwise_eos`` False: its token-wise scores (exact memorisation, extraction strength,
      min-k %, min-k %++) come from ``tokenwise_(vocab_)logprobs``, which drop the last label
      ("-1 to ignore eos prediction"): EOS is not scored there.
    - ``zlib_text`` ``decoded_target``: the zlib attack compresses
      ``tokenizer.decode(labels, skip_special_tokens=True)``, the answer as decoded from its
      tokens (a leading space included where the tokenizer keeps one).
    - ``es_no_match_one_over_n``: its extraction-strength loop leaves ``k = len - 1`` when no
      suffix matches, so a miss scores 1/len, not 0.
    - ``sigma_floor`` 1e-3: min-k %++ clamps the *variance* at 1e-6, i.e. σ at 1e-3.
    - QA answers generated up to 200 new tokens (TOFU's setting).
    """

    name: str
    append_eos: bool
    tokenwise_eos: bool
    zlib_text: str  # "scored_text" | "answer" | "decoded_target"
    es_no_match_one_over_n: bool
    sigma_floor: float
    qa_max_new_tokens: int | None  # None: the longest reference answer + 8

    def tokenwise(self, logp: torch.Tensor, *rest: torch.Tensor | None) -> tuple:
        """``(logp, *rest)`` cut to the positions the token-wise metrics score: without the
        appended EOS when the profile leaves it out there."""
        if self.append_eos and not self.tokenwise_eos and len(logp) > 1:
            return (logp[:-1], *(None if r is None else r[:-1] for r in rest))
        return (logp, *rest)

    def describe(self) -> str:
        if not self.append_eos:
            eos = "answer tokens only (no EOS)"
        elif self.tokenwise_eos:
            eos = "EOS scored after each answer"
        else:
            eos = "EOS scored in probability/truth ratio/LOSS/zlib, not in EM/ES/min-k/min-k++"
        z = {
            "scored_text": "zlib over the scored text",
            "answer": "zlib over the answer",
            "decoded_target": "zlib over the decoded answer tokens",
        }[self.zlib_text]
        gen = (
            f"QA generation up to {self.qa_max_new_tokens} new tokens"
            if self.qa_max_new_tokens
            else "QA generation up to the longest answer + 8 tokens"
        )
        es = "ES 1/len on no match" if self.es_no_match_one_over_n else "ES 0 on no match"
        return f"{self.name}: {eos}; {z}; {gen}; {es}; min-k++ sigma floor {self.sigma_floor:g}"


SCORINGS = {
    "genforget": Scoring(
        "genforget",
        append_eos=False,
        tokenwise_eos=False,
        zlib_text="scored_text",
        es_no_match_one_over_n=False,
        sigma_floor=1e-6,
        qa_max_new_tokens=None,
    ),
    "open_unlearning": Scoring(
        "open_unlearning",
        append_eos=True,
        tokenwise_eos=False,
        zlib_text="decoded_target",
        es_no_match_one_over_n=True,
        sigma_floor=1e-3,
        qa_max_new_tokens=200,
    ),
}


def get_scoring(name: str) -> Scoring:
    """The :class:`Scoring` profile named ``name`` (``genforget`` or ``open_unlearning``)."""
    if name not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)} (got {name!r})")
    return SCORINGS[name]
