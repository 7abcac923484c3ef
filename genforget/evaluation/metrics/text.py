"""Text- and token-level memorisation metrics: ROUGE-L, exact memorisation, extraction strength,
and the fluency guard (degenerate generations).

Definitions: docs/metrics.md ("ROUGE-L recall", "exact memorisation (EM)",
"extraction strength (ES)", "fluency guard").
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

IdSeq = Sequence[int]


@functools.cache
def _scorer() -> Any:
    # Built (and rouge_score, which pulls in nltk and scipy, imported) once on first use:
    # importing this module should not pay for it.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-L of ``prediction`` against ``reference``: ``{"recall", "f1"}``.

    TOFU reports the recall (stemmer on); MUSE VerbMem reports the F1. Recall = LCS / reference
    tokens, so padding a generation with extra words cannot lower it.
    """
    s = _scorer().score(reference, prediction)["rougeL"]
    return {"recall": float(s.recall), "f1": float(s.fmeasure)}


def _ids(x: IdSeq) -> list[int]:
    # Tensors compare element-wise as 0-d tensors under list(); .tolist() gives plain ints.
    return x.tolist() if hasattr(x, "tolist") else list(x)  # type: ignore[union-attr]


def _check(pred: list[int], target: list[int]) -> None:
    if len(pred) != len(target):
        raise ValueError(f"pred has {len(pred)} ids but target has {len(target)}")
    if not target:
        raise ValueError("empty target")


def exact_memorisation(pred_ids: IdSeq, target_ids: IdSeq) -> float:
    """EM: share of target positions where the teacher-forced argmax equals the target token.

    ``pred_ids[t]`` must be the argmax of p(.|x, y<t), i.e. already aligned with ``target_ids[t]``.
    """
    pred, target = _ids(pred_ids), _ids(target_ids)
    _check(pred, target)
    return sum(p == t for p, t in zip(pred, target, strict=True)) / len(target)


def extraction_strength(pred_ids: IdSeq, target_ids: IdSeq, no_match_one_over_n: bool = False) -> float:
    """ES = 1 − k*/len(y), k* the smallest k in 0..len−1 with ``pred[k:] == target[k:]``.

    When no non-empty suffix matches (even the last token is wrong), k* = len(y) and ES = 0,
    as METRICS.md defines it. One public implementation (open-unlearning) leaves its loop with
    k = len−1 in that case and returns 1/len(y) — the same value as "only the last token
    matches" here — so its numbers are higher by 1/len(y) exactly on the no-match examples;
    ``no_match_one_over_n`` reproduces that (the ``open_unlearning`` scoring profile).
    """
    pred, target = _ids(pred_ids), _ids(target_ids)
    _check(pred, target)
    n = len(target)
    k_star = next((k for k in range(n) if pred[k:] == target[k:]), n - 1 if no_match_one_over_n else n)
    return 1.0 - k_star / n


def is_degenerate(text: str, n: int = 3, max_repeat_share: float = 0.5) -> bool:
    """Whether a generation is empty, a loop of one word, or mostly repeated word n-grams.

    Loop: with at least 4 words, one word makes up more than ``max_repeat_share`` of them.
    Repeats: the share of word n-grams that repeat an earlier one, (total − distinct) / total,
    exceeds ``max_repeat_share`` (catches multi-word cycles such as "a b a b a b").
    Case-folded so "The the the" counts as a loop.
    """
    words = text.lower().split()
    if not words:
        return True
    if len(words) >= 4 and Counter(words).most_common(1)[0][1] / len(words) > max_repeat_share:
        return True
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return bool(grams) and (len(grams) - len(set(grams))) / len(grams) > max_repeat_share


def degeneration_rate(texts: Sequence[str]) -> float:
    """Share of ``texts`` that :func:`is_degenerate` flags (gradient ascent's typical failure)."""
    if not texts:
        raise ValueError("no texts")
    return sum(is_degenerate(t) for t in texts) / len(texts)
