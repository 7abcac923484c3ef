"""The evaluation harness: suites (YAML) of data, metrics and audits run over several models.

``make eval MODEL=<dir> SUITE=<name> [ORACLE=<dir>] [VICTIM=<dir>]`` runs ``eval/run.py``, which
calls :func:`run_suite`. Per model it computes :func:`genforget.evaluation.evaluate`; across models, forget
quality (KS test of truth ratios against the retrained oracle) and PrivLeak; per unlearned model,
the robustness audits, each on a copy.
"""

from __future__ import annotations

import copy
import dataclasses
import time

from genforget.evaluation.evaluate import evaluate
from genforget.evaluation.metrics.mia import privleak
from genforget.evaluation.metrics.registry import METRIC_INFO
from genforget.evaluation.metrics.truth import forget_quality
from genforget.evaluation.split import EvalSplit

# Suites live in genforget.evaluation.suite; re-exported here, where callers have always found them.
from genforget.evaluation.suite import (  # noqa: F401
    SUITES_DIR,
    Suite,
    SuiteData,
    build_suite_data,
    load_suite,
    parse_overrides,
    resolve_data,
    suite_forget_fingerprint,
)

AUDIT_METRICS = (
    "forget_pii_extraction",
    "forget_verbatim_extraction",
    "forget_rouge_l_recall",
    "forget_verbmem",  # MUSE data: what the audits re-measure there
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
    curve, the area between them and the largest gap (see :mod:`genforget.evaluation.audits.relearn_speed`)."""
    from genforget.evaluation.audits.relearn_speed import curve_gap, relearn_curve

    probe = EvalSplit(
        pii_probes=data.forget.pii_probes,
        verbatim_probes=data.forget.verbatim_probes,
        qa=data.forget.qa,
        chats=data.forget.chats,
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
    from genforget.evaluation.audits import quantize_copy, recovered_share, relearn_copy, split_for_relearning

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


def _bias_pairs(models: dict[str, tuple], results: dict, timings: dict, suite: Suite) -> dict:
    """``stereotype_preference`` (and one per bias type) of every model on the suite's pair file;
    returns what the report's details say about it (counts only)."""
    from genforget.data.bias_pairs import load_bias_pairs
    from genforget.evaluation.metrics.bias import stereotype_preference

    pairs = load_bias_pairs(suite.bias_pairs)
    ties = {}
    for name, (model, tok) in models.items():
        t0 = time.perf_counter()
        out = stereotype_preference(model, tok, pairs, suite.bias_pairs_normalisation)
        results[name].update({k: v for k, v in out.items() if k.startswith("stereotype_preference")})
        ties[name] = out["ties"]
        timings[f"bias_pairs_{name}_s"] = time.perf_counter() - t0
    return {
        "pairs": len(pairs),
        "normalisation": suite.bias_pairs_normalisation,
        "ties_counted_as_not_preferred": ties,
    }


def run_suite(
    models: dict[str, tuple],
    suite: Suite,
    data: SuiteData | None = None,
    oracle: str = "oracle",
    victim: str = "victim",
    method: str = "unknown",
    progress: bool = True,
    dump_examples: bool = False,
    cached: dict[str, tuple[dict, dict]] | None = None,
    scores_out: dict[str, tuple[dict, dict]] | None = None,
) -> dict:
    """Evaluate every ``(model, tokenizer)`` of ``models`` on the suite; return a report dict
    (the demo's ``report.json`` shape, plus ``audits`` and per-metric ``details``).

    ``dump_examples``: the report gets ``_examples`` (model -> per-example rows, forget-set
    content included) for the caller to write to a file of its own; it must never be written
    inside a report. ``cached``: ``{name: (results, details)}`` of models already scored on this
    suite (:mod:`genforget.eval_cache`), not evaluated again; ``scores_out``: filled with every
    model's own ``(results, details)`` (before cross-model metrics), for the caller to cache."""
    data = data or build_suite_data(suite)
    results, details, timings = {}, {}, {}
    for name, (model, tok) in models.items():
        if cached and name in cached and not dump_examples:
            results[name], details[name] = copy.deepcopy(cached[name])
            timings[f"eval_{name}_s"] = 0.0
            continue
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
            lm_eval_tasks=suite.lm_eval_tasks or None,
            lm_eval_include=suite.lm_eval_include or None,
            lm_eval_limit=suite.lm_eval_limit,
            lm_eval_num_fewshot=suite.lm_eval_num_fewshot,
        )
        timings[f"eval_{name}_s"] = time.perf_counter() - t0
    if scores_out is not None:
        scores_out.update({n: copy.deepcopy((results[n], details[n])) for n in results})
    pairs_info = _bias_pairs(models, results, timings, suite) if suite.bias_pairs else None
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
            "cached_scores": sorted(n for n in cached or {} if n in results and not dump_examples),
            "tokenization": {n: d.get("tokenization") for n, d in details.items()},
        },
    }
    if suite.lm_eval_tasks:  # per model: stderr, counts, versions (numbers and names only)
        lm = {n: d.get("lm_eval") or {} for n, d in details.items()}
        report["details"]["lm_eval"] = lm
        hib = {k: v for d in lm.values() for k, v in d.get("higher_is_better", {}).items()}
        report["details"]["metric_info"].update(
            {
                k: {
                    "name": k,
                    "higher_is_better": hib.get(k.split("@")[0]),
                    "description": "lm-evaluation-harness",
                }
                for k in used
                if k.startswith("lm_eval/")
            }
        )
    if speed is not None:
        report["relearn_speed"] = speed
    if pairs_info is not None:
        report["details"]["bias_pairs"] = pairs_info
    if dump_examples:
        report["_examples"] = {name: d.get("examples", []) for name, d in details.items()}
    return report
