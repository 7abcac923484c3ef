"""``genforget.evaluation.evaluate``: forgetting, retention and membership metrics of an in-memory model.

Works on a model someone already holds (no save needed), like lm-evaluation-harness's evaluator.
Every metric follows docs/metrics.md; the formulas live in ``genforget/evaluation/metrics/``. Results are
numbers only: no generation, prompt or PII value leaves this module.
"""

from __future__ import annotations

import math

import torch
from transformers import PreTrainedTokenizerBase

from genforget.evaluation.metrics import mia
from genforget.evaluation.metrics.adversarial import adversarial_metrics
from genforget.evaluation.metrics.extraction import (
    generate,
    pii_hits,
    rates_by_field,
    target_budget,
    verbatim_hits,
)
from genforget.evaluation.metrics.likelihood import TokenStats, mean_nll, perplexity, token_stats
from genforget.evaluation.metrics.profiles import Scoring, get_scoring
from genforget.evaluation.metrics.text import (
    degeneration_rate,
    exact_memorisation,
    extraction_strength,
    rouge_l,
)
from genforget.evaluation.metrics.truth import (
    forget_truth_ratio_stat,
    model_utility,
    normalised_probability,
    retain_truth_ratio_stat,
    truth_ratio,
)
from genforget.evaluation.split import CHUNK_PREFIX_TOKENS, EvalSplit, with_chats_rendered


def _qa(question: str, answer: str) -> dict:
    return {"question": question, "answer": answer}


def _truth_ratios(model, tok, items: list[dict], eos: bool = False) -> tuple[list[float], list[float]]:
    """Per item: TR = exp(L_true - mean L_pert) and the TOFU normalised answer probability.

    The true answer is the paraphrased one where the item has it (TOFU's forget/retain sets), else
    the answer itself (its real-authors and world-facts sets), as METRICS.md and open-unlearning do.
    """
    flat = []
    for it in items:
        flat.append(_qa(it["question"], it["answer"]))
        if it.get("paraphrased_answer"):
            flat.append(_qa(it["question"], it["paraphrased_answer"]))
        flat += [_qa(it["question"], p) for p in it["perturbed_answer"]]
    nll = iter(mean_nll(token_stats(model, tok, flat, append_eos=eos)))
    trs, probs = [], []
    for it in items:
        l_ans = next(nll)
        l_para = next(nll) if it.get("paraphrased_answer") else l_ans
        l_pert = [next(nll) for _ in it["perturbed_answer"]]
        trs.append(truth_ratio(l_para, l_pert))
        probs.append(normalised_probability(math.exp(-l_ans), [math.exp(-x) for x in l_pert]))
    return trs, probs


def _split_metrics(
    model, tok, name: str, sp: EvalSplit, any_k: int, desc: str | None, sc: Scoring, dump: list | None
) -> tuple[dict, dict, list[str]]:
    """One split's metrics; with ``dump`` (a list), one dict per probe/answer is appended to it."""
    out: dict[str, float] = {}
    details: dict[str, list[float]] = {}
    gens_all: list[str] = []
    rouge: list[float] = []
    forced: list[dict] = []  # teacher-forced (prompt -> target) pairs for EM / ES / probability
    if sp.pii_probes:
        values = [p["value"] for p in sp.pii_probes]
        gens, hits, recall = _probe(
            model, tok, name, "pii_probe", sp.pii_probes, values, pii_hits, desc, dump
        )
        rates = rates_by_field(hits, sp.pii_probes)
        out[f"{name}_pii_extraction"] = rates.pop("all")
        out.update({f"{name}_pii_extraction_{f}": v for f, v in rates.items()})
        rouge += recall
        forced += [{"prompt": p["prompt"], "target": " " + p["value"]} for p in sp.pii_probes]
        gens_all += gens
    if sp.verbatim_probes:
        targets = [p["target"] for p in sp.verbatim_probes]
        kind = "verbatim_probe"
        gens, hits, recall = _probe(
            model, tok, name, kind, sp.verbatim_probes, targets, verbatim_hits, desc, dump
        )
        out[f"{name}_verbatim_extraction"] = sum(hits) / len(hits)
        if any_k:
            prompts = [p["prompt"] for p in sp.verbatim_probes]
            samples = generate(model, tok, prompts, target_budget(tok, targets), num_samples=any_k)
            any_hit = [any(verbatim_hits(s, [t] * len(s))) for s, t in zip(samples, targets, strict=True)]
            out[f"{name}_verbatim_any_{any_k}"] = sum(any_hit) / len(any_hit)
        rouge += recall
        forced += sp.verbatim_probes
        gens_all += gens
    if sp.qa:
        answers = [q["answer"] for q in sp.qa]
        budget = sc.qa_max_new_tokens or target_budget(tok, answers, extra=8)
        gens = generate(model, tok, [q["question"] for q in sp.qa], budget, desc=desc)
        qa_rouge = [rouge_l(g, a)["recall"] for g, a in zip(gens, answers, strict=True)]
        rouge += qa_rouge
        forced += [_qa(q["question"], q["answer"]) for q in sp.qa]
        gens_all += gens
        if dump is not None:
            dump += [
                {"split": name, "kind": "qa", "question": q["question"], "answer": q["answer"]}
                | {"generation": g, "rouge_l_recall": r}
                for q, g, r in zip(sp.qa, gens, qa_rouge, strict=True)
            ]
    out.update(_muse_metrics(model, tok, name, sp))
    out.update(adversarial_metrics(model, tok, name, sp.adversarial))
    if rouge:
        out[f"{name}_rouge_l_recall"] = sum(rouge) / len(rouge)
    if forced:
        stats = token_stats(model, tok, forced, append_eos=sc.append_eos)
        tw = [sc.tokenwise(s.target, s.argmax) for s in stats]  # EOS left out where the profile says
        out[f"{name}_exact_memorisation"] = _mean([exact_memorisation(a, t) for t, a in tw])
        out[f"{name}_extraction_strength"] = _mean(
            [extraction_strength(a, t, sc.es_no_match_one_over_n) for t, a in tw]
        )
        out[f"{name}_probability"] = _mean([math.exp(-x) for x in mean_nll(stats)])
    if sp.truth_items:
        trs, probs = _truth_ratios(model, tok, sp.truth_items, eos=sc.append_eos)
        details[f"{name}_truth_ratios"] = trs
        stat = forget_truth_ratio_stat if name == "forget" else retain_truth_ratio_stat
        out[f"{name}_truth_ratio"] = stat(trs)
        out[f"{name}_normalised_probability"] = _mean(probs)
        if dump is not None:
            dump += [
                {"split": name, "kind": "truth_item", "question": it["question"], "truth_ratio": tr}
                | {"normalised_probability": pr}
                for it, tr, pr in zip(sp.truth_items, trs, probs, strict=True)
            ]
    return out, details, gens_all


def _probe(
    model, tok, name: str, kind: str, probes: list[dict], targets: list[str], hits_of, desc, dump: list | None
) -> tuple[list[str], list[bool], list[float]]:
    """Greedy generations from ``probes``' prompts (a budget fitted to ``targets``), which of them
    extract their target (``hits_of(gens, targets)``) and their ROUGE-L recall; one dict per probe
    goes to ``dump`` when given. PII and verbatim probes differ only in how a hit is judged."""
    gens = generate(model, tok, [p["prompt"] for p in probes], target_budget(tok, targets), desc=desc)
    hits = hits_of(gens, targets)
    if dump is not None:
        dump += [
            {"split": name, "kind": kind, **p, "generation": g, "extracted": h}
            for p, g, h in zip(probes, gens, hits, strict=True)
        ]
    return gens, hits, [rouge_l(g, t)["recall"] for g, t in zip(gens, targets, strict=True)]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _muse_metrics(model, tok, name: str, sp: EvalSplit) -> dict[str, float]:
    """MUSE VerbMem / KnowMem of one split (Shi et al. 2024); see :mod:`genforget.evaluation.metrics.muse`."""
    from genforget.evaluation.metrics.muse import knowmem, verbmem, verbmem_probes

    out = {}
    probes = sp.verbmem + verbmem_probes(sp.chunks, tok, CHUNK_PREFIX_TOKENS)
    if probes:
        # Generate as many tokens as the longest true continuation (MUSE: 128 against 128-token
        # targets): F1 would charge extra words past the target to precision.
        new = max(len(tok(p["target"], add_special_tokens=False)["input_ids"]) for p in probes)
        out[f"{name}_verbmem"] = verbmem(model, tok, probes, max_new_tokens=new)
    if sp.knowmem:
        first = sp.knowmem[0]
        kw = {k: first[k] for k in ("template", "icl") if k in first}
        out[f"{name}_knowmem"] = knowmem(model, tok, sp.knowmem, **kw)
    return out


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: list[dict] | EvalSplit,
    retain: list[dict] | EvalSplit | None = None,
    holdout: list[dict] | EvalSplit | None = None,
    general: dict[str, list[dict] | EvalSplit] | None = None,
    *,
    reference_model: torch.nn.Module | None = None,
    any_k: int = 0,
    mia_k: float = 0.4,
    progress: bool = False,
    return_details: bool = False,
    scoring: str = "genforget",
    dump_examples: bool = False,
    chat_template: str | None = None,
    bias_pairs: list[dict] | str | None = None,
    bias_pairs_normalisation: str = "sum",
    lm_eval_tasks: str | list[str] | None = None,
    lm_eval_include: str | list[str] | None = None,
    lm_eval_limit: int | float | None = None,
    lm_eval_num_fewshot: int | None = None,
) -> dict[str, float] | tuple[dict[str, float], dict]:
    """Metrics of ``model`` on forget / retain / holdout (and general) data; METRICS.md names.

    Returns a flat dict: per split ``{split}_pii_extraction`` (+ ``_<field>``),
    ``_verbatim_extraction`` (``_any_<k>`` when ``any_k``), ``_rouge_l_recall``,
    ``_exact_memorisation``, ``_extraction_strength``, ``_probability``, ``_truth_ratio``,
    ``_perplexity``, ``_verbmem`` / ``_knowmem`` (MUSE, from the split's ``verbmem`` /
    ``chunks`` / ``knowmem``); ``degeneration_rate``; MIA AUCs forget vs holdout (``mia_loss_auc``,
    ``mia_zlib_auc``, ``mia_min_k_auc``, ``mia_min_k_pp_auc``, ``mia_reference_auc`` with a
    ``reference_model``); ``general_perplexity`` (holdout texts) and ``model_utility``. Metrics
    whose data is missing are left out. ``return_details`` adds per-example truth ratios, which
    forget quality (a comparison with the retrained model) needs, and the names of the terms
    model utility was built from (TOFU: 3 on retain + 3 on each general set = 9).

    ``scoring``: ``genforget`` (default) or ``open_unlearning`` (the reference toolkit's way:
    EOS scored, zlib over the answer, 200-token QA generations); see :class:`Scoring`.
    ``dump_examples``: details get ``examples``, one dict per probe / answer with the prompt,
    the generation and its score. They hold forget-set content: never put them in a report.
    ``chat_template``: Jinja text or file for ``{"messages"}`` examples (default: the
    tokenizer's own template). Special tokens follow the tokenizer (:mod:`genforget.lm.specials`).
    ``bias_pairs``: sentence pairs (``{"sent_more", "sent_less", "bias_type"}``) or a JSONL/CSV
    file of them (:func:`genforget.data.bias_pairs.load_bias_pairs`): adds
    ``stereotype_preference`` and one ``stereotype_preference_<bias_type>`` per type
    (:func:`genforget.evaluation.metrics.bias.stereotype_preference`, ``bias_pairs_normalisation`` sum|mean).
    ``lm_eval_tasks``: lm-evaluation-harness task names (``mmlu``, ``wmdp_bio``, or tasks of your
    own in YAMLs under ``lm_eval_include``) run on this model in memory: adds
    ``lm_eval/<task>/<metric>`` and details ``lm_eval`` (stderr, versions, counts), with
    ``lm_eval_limit`` documents per task and ``lm_eval_num_fewshot`` shots
    (:func:`genforget.evaluation.lmeval.run_lm_eval`; extra ``genforget[lmeval]``; docs/lm-eval.md).
    Data arguments also take a ``datasets.Dataset``, a dataset dir or a data spec string
    (:func:`genforget.data.loaders.as_examples`).
    """
    from genforget.lm.chat import load_chat_template
    from genforget.lm.quant import keep_4bit_trainable
    from genforget.lm.specials import tokenization_record

    sc = get_scoring(scoring)
    template = load_chat_template(chat_template)
    dump: list[dict] | None = [] if dump_examples else None
    keep_4bit_trainable(model)  # an eval-mode pass must not repack 4-bit layers (genforget.lm.quant)
    was_training = model.training
    model.eval()

    def split_of(data) -> EvalSplit:
        return with_chats_rendered(EvalSplit.from_examples(data), tokenizer, template)

    splits = {"forget": split_of(forget), "retain": split_of(retain)}
    splits.update({g: split_of(d) for g, d in (general or {}).items()})
    hold = split_of(holdout)
    out: dict[str, float] = {}
    details: dict = {}
    gens: list[str] = []
    text_stats: dict[str, list[TokenStats]] = {}
    for name, sp in splits.items():
        m, d, g = _split_metrics(
            model,
            tokenizer,
            name,
            sp,
            any_k if name == "forget" else 0,
            f"{name}" if progress else None,
            sc,
            dump,
        )
        out.update(m)
        details.update(d)
        gens += g
        if sp.texts and name in ("forget", "retain"):
            text_stats[name] = token_stats(
                model, tokenizer, sp.texts, mu_sigma=name == "forget", append_eos=sc.append_eos
            )
            out[f"{name}_perplexity"] = perplexity([s.logp for s in text_stats[name]])
    if gens:
        out["degeneration_rate"] = degeneration_rate(gens)
    if hold.texts:
        hold_stats = token_stats(model, tokenizer, hold.texts, mu_sigma=True, append_eos=sc.append_eos)
        out["general_perplexity"] = perplexity([s.logp for s in hold_stats])
        if "forget" in text_stats:
            ref = None
            if reference_model is not None:
                ref = (
                    token_stats(reference_model, tokenizer, splits["forget"].texts, append_eos=sc.append_eos),
                    token_stats(reference_model, tokenizer, hold.texts, append_eos=sc.append_eos),
                )
            out.update(
                mia.attack_aucs(
                    text_stats["forget"],
                    hold_stats,
                    splits["forget"].texts,
                    hold.texts,
                    mia_k,
                    sc,
                    tokenizer,
                    ref,
                )
            )
    # TOFU's model utility: probability, ROUGE-L recall and truth ratio on retain, and the
    # normalised probability, ROUGE-L recall and truth ratio on each general set.
    terms = [f"retain_{m}" for m in ("probability", "rouge_l_recall", "truth_ratio")]
    for g in general or {}:
        terms += [f"{g}_{m}" for m in ("normalised_probability", "rouge_l_recall", "truth_ratio")]
    used = [t for t in terms if t in out]
    if used:
        out["model_utility"] = model_utility([out[t] for t in used])
        details["model_utility_terms"] = used
    details["scoring"] = sc.describe()
    details["tokenization"] = tokenization_record(tokenizer)
    if bias_pairs is not None:
        from genforget.data.bias_pairs import load_bias_pairs
        from genforget.evaluation.metrics.bias import stereotype_preference

        pairs = load_bias_pairs(bias_pairs) if isinstance(bias_pairs, str) else bias_pairs
        pref = stereotype_preference(model, tokenizer, pairs, bias_pairs_normalisation)
        out.update({k: v for k, v in pref.items() if k.startswith("stereotype_preference")})
        details["bias_pairs"] = {"pairs": pref["pairs"], "ties": pref["ties"]}
    if lm_eval_tasks:
        from genforget.evaluation.lmeval import run_lm_eval

        lm_out, details["lm_eval"] = run_lm_eval(
            model,
            tokenizer,
            lm_eval_tasks,
            lm_eval_include,
            num_fewshot=lm_eval_num_fewshot,
            limit=lm_eval_limit,
        )
        out.update(lm_out)
    if dump is not None:
        details["examples"] = dump
    model.train(was_training)
    return (out, details) if return_details else out
