"""The evaluation harness: suites (YAML) of data, metrics and audits run over several models.

``make eval MODEL=<dir> SUITE=<name> [ORACLE=<dir>] [VICTIM=<dir>]`` runs ``eval/run.py``, which
calls :func:`run_suite`. Per model it computes :func:`genforget.evaluate`; across models, forget
quality (KS test of truth ratios against the retrained oracle) and PrivLeak; per unlearned model,
the robustness audits, each on a copy.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genforget.config import make_config
from genforget.data.loaders import fingerprint
from genforget.evaluate import EvalSplit, corpus_split, evaluate
from genforget.metrics.mia import privleak
from genforget.metrics.registry import METRIC_INFO
from genforget.metrics.truth import forget_quality

SUITES_DIR = Path(__file__).resolve().parents[1] / "eval" / "suites"
AUDIT_METRICS = (
    "forget_pii_extraction",
    "forget_verbatim_extraction",
    "forget_rouge_l_recall",
    "forget_verbmem",  # MUSE data: what the audits re-measure there
)


@dataclass
class Suite:
    """An evaluation suite: which data, which audits. Every field is a YAML key."""

    name: str = "pii"
    data: str = field(
        default="pii",
        metadata={"help": "pii (built-in corpus), tofu:<dir or hub id> or muse:<dir or hub id>"},
    )
    n_people: int = 200
    n_passages: int = 50
    forget_frac: float = 0.1
    corpus_seed: int = 0
    forget_split: str = field(
        default="forget10",
        metadata={"help": "TOFU forget split: forget01, forget05 or forget10 (holdout and perturbed follow)"},
    )
    scoring: str = field(
        default="genforget",
        metadata={"help": "genforget | open_unlearning (EOS scored, zlib on answers, 200-token QA)"},
    )
    any_k: int = field(
        default=5, metadata={"help": "sampled generations for 'extractable in any of k' (0 = off)"}
    )
    audits: list[str] = field(default_factory=lambda: ["relearn", "quant8", "quant4", "paraphrase"])
    relearn_steps: int = 10
    relearn_learning_rate: float = 1e-3
    relearn_fraction: float = 0.5
    relearn_budgets: list[int] = field(
        default_factory=lambda: [0, 5, 10, 20, 40],
        metadata={"help": "relearn_speed: cumulative fine-tuning steps on the forget set to measure at"},
    )
    relearn_batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        from genforget.audit import AUDITS
        from genforget.metrics.profiles import get_scoring

        bad = [a for a in self.audits if a not in AUDITS]
        if bad:
            raise ValueError(f"unknown audit(s) {bad}; available: {', '.join(AUDITS)}")
        if self.forget_split not in ("forget01", "forget05", "forget10"):
            raise ValueError(
                f"forget_split must be forget01, forget05 or forget10 (got {self.forget_split!r})"
            )
        get_scoring(self.scoring)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` (``--set`` / ``make eval SET=...``) as a dict; values read as YAML
    scalars, so ``any_k=0`` is an int and ``audits=[relearn]`` a list."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (got {pair!r})")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def resolve_data(data: str, base: Path) -> str:
    """A suite's ``tofu:<dir>`` / ``muse:<dir>``, with ``${VAR}`` expanded and a relative dir read
    from the suite file's own folder (then the working dir), so a suite runs from any directory.
    A string that is no local dir is left as is: a hub id."""
    kind = data.split(":", 1)[0]
    if kind not in ("tofu", "muse") or ":" not in data:
        return data
    src = os.path.expandvars(data.split(":", 1)[1])
    p = Path(src)
    for cand in [p] if p.is_absolute() else [base / p, p]:
        if cand.is_dir():
            return f"{kind}:{cand.resolve()}"
    return f"{kind}:{src}"


def load_suite(name_or_path: str, overrides: dict[str, Any] | None = None) -> Suite:
    """A suite from ``eval/suites/<name>.yaml`` or a YAML path, with ``overrides`` applied;
    unknown keys are errors (with a "did you mean")."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"suite {name_or_path!r} not found; available: {', '.join(have)}")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"suite file {path}: expected a mapping of key: value")
    values.update(overrides or {})
    if isinstance(values.get("data"), str):
        values["data"] = resolve_data(values["data"], path.resolve().parent)
    return make_config(Suite, values)


def suite_forget_fingerprint(suite: Suite) -> str:
    """SHA-256 of the forget examples a model is unlearned on for this suite (what
    ``recipes/unlearn_lm.py`` records as ``forget_sha256`` for ``pii:forget`` / ``tofu:<dir>:<split>``)."""
    if suite.data == "pii":
        from genforget.data.pii import build_pii_corpus

        corpus = build_pii_corpus(suite.n_people, suite.n_passages, suite.forget_frac, seed=suite.corpus_seed)
        return fingerprint(corpus.unlearn_examples("forget"))
    if suite.data.startswith("muse:"):
        from genforget.data.muse import load_muse

        return fingerprint(load_muse(suite.data.split(":", 1)[1]).raw.get("forget", []))
    from genforget.data.loaders import load_tofu

    return fingerprint(load_tofu(suite.data.split(":", 1)[1], suite.forget_split))


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
            relearn_texts=corpus.full_text_examples("forget"),
        )
    if suite.data.startswith("tofu:"):
        from genforget.data.loaders import load_tofu

        src, n = suite.data.split(":", 1)[1], suite.forget_split.removeprefix("forget")
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
            relearn_texts=[{"question": r["question"], "answer": r["answer"]} for r in forget],
        )
    if suite.data.startswith("muse:"):
        from genforget.data.muse import muse_suite_data

        return muse_suite_data(suite.data.split(":", 1)[1])
    raise ValueError(
        f"suite data must be 'pii', 'tofu:<dir or hub id>' or 'muse:<dir or hub id>' (got {suite.data!r})"
    )


def _merge(splits: list[EvalSplit]) -> EvalSplit:
    out = EvalSplit()
    for sp in splits:
        for f in dataclasses.fields(EvalSplit):
            getattr(out, f.name).extend(getattr(sp, f.name))
    return out


def _forget_rates(model, tok, split: EvalSplit) -> dict[str, float]:
    m = evaluate(model, tok, split)
    return {k: m[k] for k in AUDIT_METRICS if k in m}


def relearn_speed(models: dict[str, tuple], data: SuiteData, suite: Suite, oracle: str) -> dict:
    """The relearn-speed audit for every model: its forget-extraction curve over
    ``suite.relearn_budgets`` steps of fine-tuning on the forget set, and, against the oracle's
    curve, the area between them and the largest gap (see :mod:`genforget.audit.relearn_speed`)."""
    from genforget.audit.relearn_speed import curve_gap, relearn_curve

    probe = EvalSplit(
        pii_probes=data.forget.pii_probes, verbatim_probes=data.forget.verbatim_probes, qa=data.forget.qa
    )
    metric = next(k for k in AUDIT_METRICS if k in _forget_rates(*models[next(iter(models))], probe))
    curves, seconds = {}, {}
    for name, (model, tok) in models.items():
        t0 = time.perf_counter()
        curves[name] = relearn_curve(
            model,
            tok,
            data.relearn_texts,
            lambda m, tok=tok: _forget_rates(m, tok, probe)[metric],
            suite.relearn_budgets,
            suite.relearn_learning_rate,
            suite.relearn_batch_size,
            suite.seed,
        )
        seconds[name] = time.perf_counter() - t0
    gaps = {
        n: curve_gap(c, curves[oracle], suite.relearn_budgets)
        for n, c in curves.items()
        if oracle in curves and n != oracle
    }
    return {
        "metric": metric,
        "budgets": list(suite.relearn_budgets),
        "learning_rate": suite.relearn_learning_rate,
        "batch_size": suite.relearn_batch_size,
        "curves": curves,
        "gap_to_oracle": gaps,
        "seconds": seconds,
    }


def run_audits(model, tok, data: SuiteData, suite: Suite, victim_rates: dict | None) -> dict:
    """Re-measure forgetting after each attack on a copy of ``model``; add recovered shares.
    (``relearn_speed`` compares models with the oracle: :func:`relearn_speed`.)"""
    from genforget.audit import quantize_copy, recovered_share, relearn_copy, split_for_relearning

    base = _forget_rates(model, tok, data.forget)
    out: dict[str, dict] = {}
    for audit in suite.audits:
        t0 = time.perf_counter()
        if audit == "relearn_speed":
            continue
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
    dump_examples: bool = False,
) -> dict:
    """Evaluate every ``(model, tokenizer)`` of ``models`` on the suite; return a report dict
    (the demo's ``report.json`` shape, plus ``audits`` and per-metric ``details``).

    ``dump_examples``: the report gets ``_examples`` (model -> per-example rows, forget-set
    content included) for the caller to write to a file of its own; it must never be written
    inside a report."""
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
            scoring=suite.scoring,
            dump_examples=dump_examples,
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
        if name not in (oracle, victim) and [a for a in suite.audits if a != "relearn_speed"]:
            audits[name] = run_audits(model, tok, data, suite, victim_rates or None)
    speed = None
    if "relearn_speed" in suite.audits and data.relearn_texts:
        speed = relearn_speed(models, data, suite, oracle)
        for name, gap in speed["gap_to_oracle"].items():
            if name != victim:
                audits.setdefault(name, {})["relearn_speed"] = {
                    "relearn_gap_area": gap["area"],
                    "relearn_max_gap": gap["max_gap"],
                    "relearn_max_gap_at": gap["max_gap_at"],
                    "seconds": speed["seconds"][name],
                }
    used = sorted({k for r in results.values() for k in r})
    first = next(iter(details.values()), {})
    report = {
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
            "scoring": first.get("scoring"),
            "model_utility_terms": first.get("model_utility_terms"),
        },
    }
    if speed is not None:
        report["relearn_speed"] = speed
    if dump_examples:
        report["_examples"] = {name: d.get("examples", []) for name, d in details.items()}
    return report
