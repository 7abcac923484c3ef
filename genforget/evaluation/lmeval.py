"""Retained capability on standard tasks through EleutherAI's lm-evaluation-harness.

genforget's own probes measure what was forgotten and what was kept of the data it was given;
the field measures general capability with lm-evaluation-harness tasks (WMDP, MMLU, ...), as
open-unlearning does. :func:`run_lm_eval` runs named tasks on the model already in memory
(``HFLM(pretrained=model, tokenizer=tok)``: no save, no reload) and returns their metrics as
flat ``lm_eval/<task>/<metric>`` numbers that sit next to genforget's in a report.

lm-eval is the extra ``genforget[lmeval]``, imported only when a task is asked for. Per-sample
logs are never requested: a task's documents may be the forget set itself (a WMDP-style hazard
set), and reports hold numbers only. See docs/lm-eval.md.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

PREFIX = "lm_eval"


def _require_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as e:  # the extra is optional: say how to get it
        raise ImportError("lm_eval_tasks needs lm-evaluation-harness: pip install 'genforget[lmeval]'") from e
    return lm_eval


def metric_key(task: str, metric: str) -> str:
    """The flat report key of one lm-eval result entry (``acc,none`` -> ``lm_eval/<task>/acc``;
    a filter other than ``none`` is kept: ``lm_eval/gsm8k/exact_match@strict-match``)."""
    name, _, flt = metric.partition(",")
    return f"{PREFIX}/{task}/{name}" + (f"@{flt}" if flt and flt != "none" else "")


def task_manager(
    include_path: str | Path | Sequence[str | Path] | None = None, tasks: Sequence[str] = ()
) -> Any:
    """lm-eval's ``TaskManager`` over the user's task YAML dirs, plus lm-eval's own registry
    unless every one of ``tasks`` is found in those dirs (indexing lm-eval's ~15k task YAMLs
    takes seconds; a suite of local tasks skips it). Built once per process and set of dirs."""
    paths = [include_path] if isinstance(include_path, (str, Path)) else list(include_path or [])
    paths = [os.path.expandvars(str(p)) for p in paths]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(
            f"lm_eval_include: {', '.join(missing)} not found; give a dir (or file) of lm-eval task YAMLs"
        )
    if paths:
        local = _task_manager(tuple(paths), False)
        if tasks and all(t in local.all_tasks for t in tasks):
            return local
    return _task_manager(tuple(paths), True)


@functools.lru_cache(maxsize=8)
def _task_manager(paths: tuple[str, ...], include_defaults: bool) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths) or None, include_defaults=include_defaults)


def run_lm_eval(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[str],
    include_path: str | Path | Sequence[str | Path] | None = None,
    *,
    num_fewshot: int | None = None,
    limit: int | float | None = None,
    batch_size: int = 8,
    bootstrap_iters: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, float], dict]:
    """Run lm-evaluation-harness ``tasks`` on the in-memory ``model``.

    Gao et al., "A framework for few-shot language model evaluation" (EleutherAI
    lm-evaluation-harness, 2021-). ``tasks``: lm-eval task, group or tag names (``mmlu``,
    ``wmdp_bio``, or a task defined in a YAML under ``include_path``). ``limit``: at most this
    many documents per task (a float < 1: that share), as lm-eval's ``--limit``.
    ``bootstrap_iters``: resamples for the standard error of metrics without a closed form
    (0: none; accuracy's is closed-form either way).

    Returns ``(metrics, details)``: ``metrics`` maps ``lm_eval/<task>/<metric>`` to a number for
    each task named (a group's subtasks too); ``details`` holds the standard errors, which way
    each metric is better, document counts, shots, task versions and lm-eval's version. An
    unknown task name is a ``ValueError`` listing the near names lm-eval knows.
    """
    lm_eval = _require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)  # one name, not its letters
    if not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise ValueError(f"lm_eval_tasks must be a list of task names (got {tasks!r})")
    tm = task_manager(include_path, tasks)
    unknown = [t for t in tasks if t not in tm.all_tasks]
    if unknown:
        import difflib

        near = {t: difflib.get_close_matches(t, tm.all_tasks, n=3) for t in unknown}
        hint = "; ".join(
            f"{t}: did you mean {', '.join(n)}?" if n else f"{t}: no near name" for t, n in near.items()
        )
        raise ValueError(
            f"unknown lm-eval task(s) {unknown} ({hint}); a task of your own goes in a YAML under lm_eval_include"
        )
    was_training = model.training
    model.eval()
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        res = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=tm,
            log_samples=False,  # documents may be forget-set text: numbers only
            bootstrap_iters=bootstrap_iters,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    finally:
        model.train(was_training)
    metrics: dict[str, float] = {}
    stderr: dict[str, float | None] = {}
    for task, entry in res["results"].items():
        for metric, value in entry.items():
            if "," not in metric or not isinstance(value, (int, float)) or isinstance(value, bool):
                if "_stderr," in metric:
                    stderr[metric_key(task, metric.replace("_stderr", ""))] = None
                continue
            if "_stderr," in metric:
                stderr[metric_key(task, metric.replace("_stderr", ""))] = float(value)
            else:
                metrics[metric_key(task, metric)] = float(value)
    details = {
        "tasks": tasks,
        "stderr": stderr,
        "higher_is_better": {
            metric_key(t, f"{m},none").split("@")[0]: hib
            for t, hb in res.get("higher_is_better", {}).items()
            for m, hib in hb.items()
        },
        "n_samples": {t: n.get("effective") for t, n in res.get("n-samples", {}).items()},
        "n_shot": res.get("n-shot", {}),
        "versions": res.get("versions", {}),
        "limit": limit,
        "lm_eval_version": res.get("lm_eval_version") or getattr(lm_eval, "__version__", None),
    }
    return metrics, details
