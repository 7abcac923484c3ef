"""What a suite evaluates on, once its data is read: the splits and what the audits need; and
MUSE-format data read into them (:mod:`genforget.data.muse` reads the files, this shapes them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from genforget.data.muse import load_muse
from genforget.evaluation.split import EvalSplit


@dataclass
class SuiteData:
    """Evaluation splits plus what the audits need (never written to a report)."""

    forget: EvalSplit
    retain: EvalSplit
    holdout: EvalSplit
    general: dict[str, EvalSplit]
    relearn_units: list[tuple[list[dict], EvalSplit]]  # (examples to relearn, what to re-measure)
    paraphrase: EvalSplit
    relearn_texts: list[dict] = field(default_factory=list)  # the forget set itself, for relearn_speed


def muse_suite_data(source: str) -> SuiteData:
    """MUSE-format data (:func:`genforget.data.muse.load_muse`) as suite splits: ``raw/forget`` texts
    (scored, MIA members, VerbMem chunks unless ``verbmem/forget`` gives probes), ``raw/retain*``
    likewise, ``raw/holdout`` (MIA non-members), ``knowmem/{forget,retain}_qa`` (KnowMem, with
    ``*_qa_icl`` as few-shot pairs)."""
    md = load_muse(source)
    if not md.raw.get("forget") and not md.verbmem.get("forget"):
        raise ValueError(f"{source}: MUSE data needs raw/forget or verbmem/forget")

    def split(name: str, raw: list[dict]) -> EvalSplit:
        qa = list(md.knowmem.get(f"{name}_qa", []))
        if qa and md.knowmem.get(f"{name}_qa_icl"):
            qa[0] = {**qa[0], "icl": md.knowmem[f"{name}_qa_icl"]}
        probes = md.verbmem.get(name, [])
        return EvalSplit(
            texts=raw,
            verbmem=probes,
            chunks=[] if probes else [r["text"] for r in raw],
            knowmem=qa,
        )

    forget_raw = md.raw.get("forget", [])
    retain_raw = [r for s, rows in sorted(md.raw.items()) if s.startswith("retain") for r in rows]
    forget = split("forget", forget_raw)
    return SuiteData(
        forget=forget,
        retain=split("retain", retain_raw),
        holdout=EvalSplit(texts=md.raw.get("holdout", []) or md.privleak.get("holdout", [])),
        general={},
        relearn_units=[([r], EvalSplit(chunks=[r["text"]])) for r in forget_raw],
        paraphrase=EvalSplit(),
        relearn_texts=forget_raw,
    )
