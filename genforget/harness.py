"""The evaluation harness: suites (YAML) of data, metrics and audits run over several models.

``make eval MODEL=<dir> SUITE=<name> [ORACLE=<dir>] [VICTIM=<dir>]`` runs ``eval/run.py``, which
calls :func:`run_suite`. Per model it computes :func:`genforget.evaluate`; across models, forget
quality (KS test of truth ratios against the retrained oracle) and PrivLeak; per unlearned model,
the robustness audits, each on a copy.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from genforget.config import make_config
from genforget.evaluate import EvalSplit, corpus_split, evaluate
from genforget.metrics.mia import privleak
from genforget.metrics.registry import METRIC_INFO
from genforget.metrics.truth import forget_quality

SUITES_DIR = Path(__file__).resolve().parents[1] / "eval" / "suites"
AUDIT_METRICS = ("forget_pii_extraction", "forget_verbatim_extraction", "forget_rouge_l_recall")


@dataclass
class Suite:
    """An evaluation suite: which data, which audits. Every field is a YAML key."""

    name: str = "pii"
    data: str = field(default="pii", metadata={"help": "pii (built-in corpus) or tofu:<dir or hub id>"})
    n_people: int = 200
    n_passages: int = 50
    forget_frac: float = 0.1
    corpus_seed: int = 0
    tofu_split: str = field(default="10", metadata={"help": "TOFU forget/holdout size: 01, 05 or 10"})
    any_k: int = field(
        default=5, metadata={"help": "sampled generations for 'extractable in any of k' (0 = off)"}
    )
    audits: list[str] = field(default_factory=lambda: ["relearn", "quant8", "quant4", "paraphrase"])
    relearn_steps: int = 10
    relearn_learning_rate: float = 1e-3
    relearn_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        from genforget.audit import AUDITS

        bad = [a for a in self.audits if a not in AUDITS]
        if bad:
            raise ValueError(f"unknown audit(s) {bad}; available: {', '.join(AUDITS)}")


def load_suite(name_or_path: str) -> Suite:
    """A suite from ``eval/suites/<name>.yaml`` or a YAML path; unknown keys are errors."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"suite {name_or_path!r} not found; available: {', '.join(have)}")
    return make_config(Suite, yaml.safe_load(path.read_text()) or {})


@dataclass
class SuiteData:
    """Evaluation splits plus what the audits need (never written to a report)."""

    forget: EvalSplit
    retain: EvalSplit
    holdout: EvalSplit
    general: dict[str, EvalSplit]
    relearn_units: list[tuple[list[dict], EvalSplit]]  # (examples to relearn, what to re-measure)
    paraphrase: EvalSplit


def build_suite_data(suite: Suite) -> SuiteData:
    """Materialise a suite's data: the built-in corpus or TOFU files."""
    if suite.data == "pii":
        from genforget.data.pii import build_pii_corpus

        corpus = build_pii_corpus(suite.n_people, suite.n_passages, suite.forget_frac, seed=suite.corpus_seed)
        units = [
            ([p.bio(name_spans=True)], EvalSplit(pii_probes=[p.probe(f) for f in p.pii]))
            for p in corpus.persons("forget")
        ] + [([t.example()], EvalSplit(verbatim_probes=[t.probe()])) for t in corpus.texts("forget")]
        return SuiteData(
            forget=corpus_split(corpus, "forget"),
            retain=corpus_split(corpus, "retain"),
            holdout=corpus_split(corpus, "holdout"),
            general={},
            relearn_units=units,
            paraphrase=EvalSplit(pii_probes=corpus.pii_probes("forget", paraphrase=True)),
        )
    if suite.data.startswith("tofu:"):
        from genforget.data.loaders import load_tofu

        src, n = suite.data.split(":", 1)[1], suite.tofu_split
        forget = load_tofu(src, f"forget{n}_perturbed")
        para = [
            {"question": r["paraphrased_question"], "answer": r["answer"]}
            for r in forget
            if "paraphrased_question" in r
        ]
        return SuiteData(
            forget=EvalSplit.from_examples(forget),
            retain=EvalSplit.from_examples(load_tofu(src, "retain_perturbed")),
            holdout=EvalSplit.from_examples(load_tofu(src, f"holdout{n}")),
            general={
                "real_authors": EvalSplit.from_examples(load_tofu(src, "real_authors_perturbed")),
                "world_facts": EvalSplit.from_examples(load_tofu(src, "world_facts_perturbed")),
            },
            relearn_units=[
                ([{"question": r["question"], "answer": r["answer"]}], EvalSplit(qa=[r])) for r in forget
            ],
            paraphrase=EvalSplit(qa=para),
        )
    raise ValueError(f"suite data must be 'pii' or 'tofu:<dir or hub id>' (got {suite.data!r})")


def _merge(splits: list[EvalSplit]) -> EvalSplit:
    out = EvalSplit()
    for sp in splits:
        for f in dataclasses.fields(EvalSplit):
            getattr(out, f.name).extend(getattr(sp, f.name))
    return out


def _forget_rates(model, tok, split: EvalSplit) -> dict[str, float]:
    m = evaluate(model, tok, split)
    return {k: m[k] for k in AUDIT_METRICS if k in m}


def run_audits(model, tok, data: SuiteData, suite: Suite, victim_rates: dict | None) -> dict:
    """Re-measure forgetting after each attack on a copy of ``model``; add recovered shares."""
    from genforget.audit import quantize_copy, recovered_share, relearn_copy, split_for_relearning

    base = _forget_rates(model, tok, data.forget)
    out: dict[str, dict] = {}
    for audit in suite.audits:
        t0 = time.perf_counter()
        if audit == "relearn":
            attack, held = split_for_relearning(data.relearn_units, suite.relearn_fraction, suite.seed)
            examples = [ex for exs, _ in attack for ex in exs]
            attacked = relearn_copy(
                model, tok, examples, suite.relearn_steps, suite.relearn_learning_rate, seed=suite.seed
            )
            held_split = _merge([sp for _, sp in held])
            rates = _forget_rates(attacked, tok, held_split)
            reference = _forget_rates(model, tok, held_split)
            res = {"held_out_" + k: v for k, v in rates.items()}
            res.update(
                {
                    "attack_slice_" + k: v
                    for k, v in _forget_rates(attacked, tok, _merge([sp for _, sp in attack])).items()
                }
            )
            res["recovered_share"] = _share(rates, reference, victim_rates, recovered_share)
        elif audit in ("quant8", "quant4"):
            rates = _forget_rates(quantize_copy(model, 8 if audit == "quant8" else 4), tok, data.forget)
            res = dict(rates, recovered_share=_share(rates, base, victim_rates, recovered_share))
        else:  # paraphrase
            rates = _forget_rates(model, tok, data.paraphrase)
            res = dict(rates, recovered_share=_share(rates, base, victim_rates, recovered_share))
        res["seconds"] = time.perf_counter() - t0
        out[audit] = res
    return out


def _share(rates: dict, unlearned: dict, victim: dict | None, fn) -> float | None:
    """Recovered share of the headline extraction metric (PII if present, else verbatim/ROUGE)."""
    for k in AUDIT_METRICS:
        if k in rates and k in unlearned:
            return fn(rates[k], unlearned[k], (victim or {}).get(k))
    return None


def run_suite(
    models: dict[str, tuple],
    suite: Suite,
    data: SuiteData | None = None,
    oracle: str = "oracle",
    victim: str = "victim",
    method: str = "unknown",
    progress: bool = True,
) -> dict:
    """Evaluate every ``(model, tokenizer)`` of ``models`` on the suite; return a report dict
    (the demo's ``report.json`` shape, plus ``audits`` and per-metric ``details``)."""
    data = data or build_suite_data(suite)
    results, details, timings = {}, {}, {}
    for name, (model, tok) in models.items():
        t0 = time.perf_counter()
        ref = models[oracle][0] if oracle in models and name != oracle else None
        results[name], details[name] = evaluate(
            model,
            tok,
            data.forget,
            data.retain,
            data.holdout,
            data.general,
            reference_model=ref,
            any_k=suite.any_k,
            progress=progress,
            return_details=True,
        )
        timings[f"eval_{name}_s"] = time.perf_counter() - t0
    if oracle in results:
        o_tr = details[oracle].get("forget_truth_ratios")
        for name in results:
            if name == oracle:
                continue
            if o_tr and details[name].get("forget_truth_ratios"):
                results[name]["forget_quality"] = forget_quality(details[name]["forget_truth_ratios"], o_tr)
            if "mia_min_k_auc" in results[name]:
                # MUSE orients AUC the other way (members scored high): convert both.
                results[name]["privleak"] = privleak(
                    1 - results[name]["mia_min_k_auc"], 1 - results[oracle]["mia_min_k_auc"]
                )
    audits = {}
    victim_rates = {
        k: results[victim][k] for k in AUDIT_METRICS if victim in results and k in results[victim]
    }
    for name, (model, tok) in models.items():
        if name not in (oracle, victim) and suite.audits:
            audits[name] = run_audits(model, tok, data, suite, victim_rates or None)
    used = sorted({k for r in results.values() for k in r})
    return {
        "method": method,
        "suite": suite.name,
        "config": {"suite": dataclasses.asdict(suite)},
        "timings": timings,
        "models": results,
        "audits": audits,
        "details": {
            "metric_info": {k: dataclasses.asdict(METRIC_INFO[k]) for k in used if k in METRIC_INFO},
            "forget_quality_against": oracle if oracle in results else None,
            "privleak_auc": "mia_min_k_auc, MUSE orientation (1 - AUC)",
            "extraction_strength_no_match": 0.0,
            "rouge": "rougeL recall, stemmer on",
        },
    }
