"""Evaluation suites: what data a suite evaluates on and which audits it runs (YAML files in
``genforget/evaluation/suites/``, package data), and the materialised data (:class:`SuiteData`). :mod:`genforget.evaluation.harness` runs
them over models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from genforget.common_args import arg
from genforget.config import make_config
from genforget.data.loaders import fingerprint
from genforget.evaluation.split import EvalSplit, corpus_split
from genforget.evaluation.suite_data import SuiteData

# Package data, so a wheel install finds the suites from any working directory.
SUITES_DIR = Path(str(files("genforget.evaluation").joinpath("suites")))


@dataclass
class Suite:
    """An evaluation suite: which data, which audits. Every field is a YAML key."""

    name: str = "pii"
    data: str = arg(
        "pii",
        "pii (built-in corpus), tofu:<dir or hub id>, muse:<dir or hub id>, jsonl:<dir> "
        "(forget.jsonl, retain.jsonl, holdout.jsonl of any example shape, chats included), or none "
        "(only bias_pairs)",
    )
    n_people: int = 200
    n_passages: int = 50
    forget_frac: float = 0.1
    corpus_seed: int = 0
    forget_split: str = arg(
        "forget10", "TOFU forget split: forget01, forget05 or forget10 (holdout and perturbed follow)"
    )
    scoring: str = arg("genforget", "genforget | open_unlearning (EOS scored, zlib on answers, 200-token QA)")
    any_k: int = arg(5, "sampled generations for 'extractable in any of k' (0 = off)")
    audits: list[str] = field(default_factory=lambda: ["relearn", "quant8", "quant4", "paraphrase"])
    relearn_steps: int = 10
    relearn_learning_rate: float = 1e-3
    relearn_fraction: float = 0.5
    relearn_budgets: list[int] = arg(
        factory=lambda: [0, 5, 10, 20, 40],
        help="relearn_speed: cumulative fine-tuning steps on the forget set to measure at",
    )
    relearn_batch_size: int = 8
    adversarial: bool = arg(
        True,
        "pii data: adversarial probe families (rephrased, partial, hint; neighbour on "
        "retain) as {split}_adversarial_<family>",
    )
    seed: int = 0
    bias_pairs: str = arg(
        "",
        "JSONL/CSV of sent_more/sent_less pairs (CrowS-Pairs / StereoSet shape): adds "
        "stereotype_preference per model (a relative path: the suite file's folder, then the working dir)",
    )
    bias_pairs_normalisation: str = arg(
        "sum", "sentence log-likelihood compared per pair: sum (whole sentence) or mean (per token)"
    )
    lm_eval_tasks: list[str] = arg(
        factory=list,
        help="lm-evaluation-harness tasks run on every model (mmlu, wmdp_bio, or tasks of your own "
        "under lm_eval_include): lm_eval/<task>/<metric> per model; needs genforget[lmeval]",
    )
    lm_eval_include: list[str] = arg(
        factory=list,
        help="dirs or files of lm-eval task YAMLs (a relative path: the suite file's folder, then the working dir)",
    )
    lm_eval_limit: float | None = arg(
        None, "at most this many documents per lm-eval task (a value < 1: that share); none = all"
    )
    lm_eval_num_fewshot: int | None = arg(None, "few-shot examples per lm-eval prompt; none = the task's own")

    def __post_init__(self) -> None:
        from genforget.evaluation.audits import AUDITS

        for key in ("lm_eval_tasks", "lm_eval_include"):
            value = getattr(self, key)
            if isinstance(value, str):
                setattr(self, key, [value])  # `--set lm_eval_tasks=mmlu` reads as one name
            elif not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key} must be a list of names/paths, e.g. {key}: [mmlu] (got {value!r})")
        if self.lm_eval_limit is not None and (
            isinstance(self.lm_eval_limit, bool)
            or not isinstance(self.lm_eval_limit, (int, float))
            or self.lm_eval_limit <= 0
        ):
            raise ValueError(f"lm_eval_limit must be a positive number or null (got {self.lm_eval_limit!r})")
        from genforget.evaluation.metrics.profiles import get_scoring

        bad = [a for a in self.audits if a not in AUDITS]
        if bad:
            raise ValueError(f"unknown audit(s) {bad}; available: {', '.join(AUDITS)}")
        if self.forget_split not in ("forget01", "forget05", "forget10"):
            raise ValueError(
                f"forget_split must be forget01, forget05 or forget10 (got {self.forget_split!r})"
            )
        get_scoring(self.scoring)
        from genforget.evaluation.metrics.bias import NORMALISATIONS

        if self.bias_pairs_normalisation not in NORMALISATIONS:
            raise ValueError(
                f"bias_pairs_normalisation must be one of {NORMALISATIONS} (got {self.bias_pairs_normalisation!r})"
            )
        if self.data == "none" and not self.bias_pairs and not self.lm_eval_tasks:
            raise ValueError(
                "suite data 'none' evaluates bias_pairs only (or lm_eval_tasks): give bias_pairs=<file> "
                "or lm_eval_tasks=[<task>]"
            )


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
    if kind not in ("tofu", "muse", "jsonl") or ":" not in data:
        return data
    src = os.path.expandvars(data.split(":", 1)[1])
    if src == "builtin":  # the copy packaged with genforget (genforget.data.packaged)
        return data
    p = Path(src)
    for cand in [p] if p.is_absolute() else [base / p, p]:
        if cand.is_dir():
            return f"{kind}:{cand.resolve()}"
    return f"{kind}:{src}"


def load_suite(name_or_path: str, overrides: dict[str, Any] | None = None) -> Suite:
    """A suite from ``genforget/evaluation/suites/<name>.yaml`` or a YAML path, with ``overrides`` applied;
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
    if isinstance(values.get("bias_pairs"), str) and values["bias_pairs"]:
        pairs = Path(os.path.expandvars(values["bias_pairs"]))
        if not pairs.is_absolute() and (path.resolve().parent / pairs).is_file():
            values["bias_pairs"] = str(path.resolve().parent / pairs)
    includes = values.get("lm_eval_include")
    if isinstance(includes, (str, list)):
        here = path.resolve().parent
        values["lm_eval_include"] = [
            str(here / p) if not Path(p).is_absolute() and (here / p).exists() else p
            for p in ([includes] if isinstance(includes, str) else includes)
            for p in [os.path.expandvars(str(p))]
        ]
    return make_config(Suite, values)


def suite_forget_fingerprint(suite: Suite) -> str:
    """SHA-256 of the forget examples a model is unlearned on for this suite (what
    ``recipes/unlearn_lm.py`` records as ``forget_sha256`` for ``pii:forget`` / ``tofu:<dir>:<split>``)."""
    if suite.data == "none":
        return ""
    if suite.data == "pii":
        from genforget.data.pii import build_pii_corpus

        corpus = build_pii_corpus(suite.n_people, suite.n_passages, suite.forget_frac, seed=suite.corpus_seed)
        return fingerprint(corpus.unlearn_examples("forget"))
    if suite.data.startswith("muse:"):
        from genforget.data.muse import load_muse

        return fingerprint(load_muse(suite.data.split(":", 1)[1]).raw.get("forget", []))
    if suite.data.startswith("jsonl:"):
        from genforget.data.loaders import load_jsonl

        return fingerprint(load_jsonl(Path(suite.data.split(":", 1)[1]) / "forget.jsonl"))
    from genforget.data.loaders import load_tofu

    return fingerprint(load_tofu(suite.data.split(":", 1)[1], suite.forget_split))


def build_suite_data(suite: Suite) -> SuiteData:
    """Materialise a suite's data: the built-in corpus or TOFU files (``none``: empty splits)."""
    if suite.data == "none":
        return SuiteData(EvalSplit(), EvalSplit(), EvalSplit(), {}, [], EvalSplit())
    if suite.data == "pii":
        from genforget.data.pii import build_pii_corpus

        corpus = build_pii_corpus(suite.n_people, suite.n_passages, suite.forget_frac, seed=suite.corpus_seed)
        forget, retain = corpus_split(corpus, "forget"), corpus_split(corpus, "retain")
        if suite.adversarial:
            from genforget.evaluation.metrics.adversarial import corpus_items

            forget.adversarial, retain.adversarial = corpus_items(corpus)
        units = [
            ([p.bio(name_spans=True)], EvalSplit(pii_probes=[p.probe(f) for f in p.pii]))
            for p in corpus.persons("forget")
        ] + [([t.example()], EvalSplit(verbatim_probes=[t.probe()])) for t in corpus.texts("forget")]
        return SuiteData(
            forget=forget,
            retain=retain,
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
            if r.get("paraphrased_question") and "answer" in r
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
                ([_unit(r)], EvalSplit(chats=[r]) if "messages" in r else EvalSplit(qa=[r])) for r in forget
            ],
            paraphrase=EvalSplit(qa=para),
            relearn_texts=[_unit(r) for r in forget],
        )
    if suite.data.startswith("jsonl:"):
        return _jsonl_suite_data(Path(suite.data.split(":", 1)[1]))
    if suite.data.startswith("muse:"):
        from genforget.evaluation.suite_data import muse_suite_data

        return muse_suite_data(suite.data.split(":", 1)[1])
    raise ValueError(
        "suite data must be 'pii', 'tofu:<dir or hub id>', 'muse:<dir or hub id>' or 'jsonl:<dir>' "
        f"(got {suite.data!r})"
    )


def _unit(r: dict) -> dict:
    """A TOFU row as one example to relearn: its question/answer pair, or the chat itself."""
    return (
        {"messages": r["messages"]} if "messages" in r else {"question": r["question"], "answer": r["answer"]}
    )


def _jsonl_suite_data(root: Path) -> SuiteData:
    """``jsonl:<dir>``: ``forget.jsonl`` (required), ``retain.jsonl`` and ``holdout.jsonl`` of any
    example shape (text + spans, prompt + target, question + answer, chats)."""
    from genforget.data.loaders import load_jsonl

    if not (root / "forget.jsonl").is_file():
        raise FileNotFoundError(f"jsonl suite data: {root / 'forget.jsonl'} not found")
    split = {
        n: load_jsonl(root / f"{n}.jsonl") if (root / f"{n}.jsonl").is_file() else []
        for n in ("forget", "retain", "holdout")
    }
    return SuiteData(
        forget=EvalSplit.from_examples(split["forget"]),
        retain=EvalSplit.from_examples(split["retain"]),
        holdout=EvalSplit.from_examples(split["holdout"]),
        general={},
        relearn_units=[([ex], EvalSplit.from_examples([ex])) for ex in split["forget"]],
        paraphrase=EvalSplit(),
        relearn_texts=list(split["forget"]),
    )
