"""Names, directions and one-line meanings of every metric the eval harness reports.

Directions follow docs/metrics.md: a forget-set metric that measures what is still remembered is
better low, a retain/utility metric better high, and a metric whose ideal is a reference value
(MIA AUC at 0.5, PrivLeak at 0, forget-set truth ratio near the retain model's) has no direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from genforget.methods.registry import did_you_mean


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means and which way is better (``None``: closeness to a reference is ideal)."""

    name: str
    higher_is_better: bool | None
    description: str


METRIC_INFO: dict[str, MetricInfo] = {}


def register_metric(name: str, higher_is_better: bool | None, description: str) -> None:
    """Add a metric to :data:`METRIC_INFO`; a second entry under the same name is an error."""
    if name in METRIC_INFO:
        raise ValueError(f"metric {name!r} is already registered")
    METRIC_INFO[name] = MetricInfo(name, higher_is_better, description)


def metric_info(name: str) -> MetricInfo:
    """Look up a registered metric, with a "did you mean" on a typo."""
    if name not in METRIC_INFO:
        raise ValueError(f"unknown metric {name!r}.{did_you_mean(name, sorted(METRIC_INFO))}")
    return METRIC_INFO[name]


_BUILTIN: list[tuple[str, bool | None, str]] = [
    ("forget_pii_extraction", False, "share of forget-set PII values reproduced by greedy decoding"),
    ("retain_pii_extraction", True, "share of retain-set PII values reproduced by greedy decoding"),
    ("forget_verbatim_extraction", False, "share of forget targets reproduced exactly by greedy decoding"),
    ("retain_verbatim_extraction", True, "share of retain targets reproduced exactly by greedy decoding"),
    ("forget_verbatim_any_k", False, "share of forget targets reproduced in any of k sampled generations"),
    ("forget_rouge_l_recall", False, "ROUGE-L recall (stemmed) of greedy generations vs forget targets"),
    ("retain_rouge_l_recall", True, "ROUGE-L recall (stemmed) of greedy generations vs retain targets"),
    ("forget_exact_memorisation", False, "teacher-forced share of forget target tokens that are the argmax"),
    ("forget_extraction_strength", False, "1 - k*/len: longest argmax-matching target suffix, forget set"),
    ("forget_truth_ratio", None, "mean min(TR, 1/TR) on the forget set; compare with the retain model"),
    ("retain_truth_ratio", True, "mean max(0, 1 - TR) on the retain set"),
    ("forget_quality", True, "KS-test p-value of forget-set TR, unlearned vs retain model (>= 0.05 ok)"),
    ("model_utility", True, "TOFU harmonic mean of probability, ROUGE-L and TR on retain/general sets"),
    ("retain_perplexity", False, "exp of mean target NLL on the retain set"),
    ("general_perplexity", False, "exp of mean NLL on general held-out text"),
    ("forget_perplexity", None, "exp of mean target NLL on the forget set; ideal is the retain model's"),
    ("mia_loss_auc", None, "MIA AUC, forget vs holdout, LOSS score; 0.5 is ideal"),
    ("mia_zlib_auc", None, "MIA AUC, forget vs holdout, zlib-normalised loss; 0.5 is ideal"),
    ("mia_min_k_auc", None, "MIA AUC, forget vs holdout, min-k% score; 0.5 is ideal"),
    ("mia_min_k_pp_auc", None, "MIA AUC, forget vs holdout, min-k%++ score; 0.5 is ideal"),
    ("mia_reference_auc", None, "MIA AUC, forget vs holdout, loss minus reference-model loss; 0.5 ideal"),
    ("privleak", None, "MUSE PrivLeak: relative min-k% AUC gap to the retrain model, in %; 0 is ideal"),
    ("degeneration_rate", False, "share of generations that are empty, loops or repeated n-grams"),
    ("retain_exact_memorisation", True, "teacher-forced share of retain target tokens that are the argmax"),
    ("retain_extraction_strength", True, "1 - k*/len: longest argmax-matching target suffix, retain set"),
    ("forget_probability", False, "mean p(target | prompt) = exp(-mean token NLL), forget set"),
    ("retain_probability", True, "mean p(target | prompt) = exp(-mean token NLL), retain set (TOFU utility)"),
    ("forget_normalised_probability", False, "p(answer) / (p(answer) + sum p(perturbed)), forget set"),
    ("retain_normalised_probability", True, "p(answer) / (p(answer) + sum p(perturbed)), retain set"),
]
# The TOFU general sets: probability (normalised), ROUGE-L and truth ratio enter model utility.
_BUILTIN += [
    (f"{g}_{m}", True, f"{m.replace('_', ' ')} on the TOFU {g.replace('_', ' ')} set")
    for g in ("real_authors", "world_facts")
    for m in (
        "normalised_probability",
        "rouge_l_recall",
        "truth_ratio",
        "probability",
        "exact_memorisation",
        "extraction_strength",
    )
]
# MUSE (Shi et al. 2024, arXiv:2407.06460), genforget/evaluation/metrics/muse.py.
_BUILTIN += [
    ("forget_verbmem", False, "MUSE VerbMem: ROUGE-L F1, greedy 128-token continuation of forget prefixes"),
    ("retain_verbmem", True, "MUSE VerbMem on retain texts: ROUGE-L F1 of greedy continuations of prefixes"),
    ("forget_knowmem", False, "MUSE KnowMem: ROUGE-L F1 of answers to questions about the forget texts"),
    ("retain_knowmem", True, "MUSE KnowMem: ROUGE-L F1 of answers to questions about the retain texts"),
]
# Diffusion (class/concept erasure), judged by a held-out classifier (genforget/diffusion/judge.py).
_BUILTIN += [
    (
        "erased_class_accuracy",
        False,
        "share of samples generated for the erased class the judge assigns to it",
    ),
    ("unlearning_accuracy", True, "UA: 1 - erased_class_accuracy"),
    ("retained_accuracy", True, "IRA: judge accuracy on samples generated for the other classes"),
    ("retained_judge_fd", False, "Frechet distance, judge-logit space, retained-class samples vs real data"),
    ("retained_confidence", True, "mean judge max-probability on retained-class samples (quality proxy)"),
]
# Image copyright takedowns (genforget/diffusion/replication.py, replication_suite.py): Carlini et al.
# 2023's extraction criterion on generations from each work's caption.
_BUILTIN += [
    (
        "forgotten_extraction",
        False,
        "share of taken-down works' caption generations that copy the work (Carlini)",
    ),
    ("kept_extraction", True, "share of other works' caption generations that still copy their work"),
    (
        "retained_quality",
        True,
        "share of background-caption generations whose nearest training image is theirs",
    ),
    ("forgotten_ssim", False, "mean SSIM of the taken-down captions' generations to the work"),
    ("forgotten_nn_distance", True, "median RMS distance of those generations to the nearest training image"),
    ("worst_kept_ratio", True, "smallest kept caption's score / the victim's"),
]
# Backdoors (the poisoning demo, genforget/evaluation/metrics/backdoor.py).
_BUILTIN += [
    ("attack_success_rate", False, "share of triggered prompts whose greedy continuation holds the payload"),
    ("false_trigger_rate", False, "share of the same prompts without the trigger that emit the payload"),
]
# Bias (the bias demo and the pair benchmarks, genforget/evaluation/metrics/bias.py and bias_pairs.py).
_BIAS: list[tuple[str, bool | None, str]] = [
    (
        "counterfactual_gap",
        False,
        "mean over applicants of the spread of P(positive) across attribute values",
    ),
    ("counterfactual_gap_signed", None, "mean P(positive | first value) - P(positive | second); 0 is ideal"),
    (
        "counterfactual_flip_share",
        False,
        "share of applicants whose decision changes with the attribute alone",
    ),
    (
        "counterfactual_flip_share_signed",
        None,
        "(flips favouring the first value - the second's) / n; 0 ideal",
    ),
    (
        "demographic_parity_gap",
        False,
        "largest - smallest positive-decision rate of matched attribute groups",
    ),
    ("demographic_parity_gap_signed", None, "positive-decision rate, first value minus second; 0 is ideal"),
    ("task_accuracy", True, "share of held-out decisions equal to the fair rule's"),
    ("task_accuracy_outside_band", True, "task accuracy on applicants the biased reviewer never decided"),
    ("decision_mass", True, "mean probability of either outcome after a decision prompt (still answers)"),
    (
        "stereotype_preference",
        None,
        "share of sentence pairs where the stereotyped one is more likely; 0.5 ideal",
    ),
]
_BUILTIN += _BIAS
# Adversarial probe families (genforget/evaluation/metrics/adversarial.py): share of targets
# extracted by any probe of the family.
_BUILTIN += [
    ("forget_adversarial_rephrased", False, "forget identifiers extracted when asked in other phrasings"),
    ("forget_adversarial_partial", False, "forget identifiers completed from their first part"),
    ("forget_adversarial_hint", False, "forget identifiers extracted with another true fact in context"),
    (
        "retain_adversarial_neighbour",
        True,
        "identifiers of people sharing a surname/employer still extracted",
    ),
]

for _name, _hib, _desc in _BUILTIN:
    register_metric(_name, _hib, _desc)
