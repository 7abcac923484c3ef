"""``genforget eval`` / ``eval/run.py``: evaluate saved models on a suite, write the reports."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from genforget.cli.args import parse_config
from genforget.cli.common import apply_chat_template_file, check_output_dir
from genforget.common_args import ChatTemplateArgs, LoadingArgs, QuantArgs, arg
from genforget.config import UsageError
from genforget.eval_cache import data_sha256, read_scores, score_key, write_scores
from genforget.io import atomic_dir


@dataclass
class EvalScriptArgs(ChatTemplateArgs, LoadingArgs, QuantArgs):
    """Models and suite of ``eval/run.py``."""

    model: list[str] = arg(factory=list, help="unlearned model dir(s) to evaluate")
    suite: str = arg(
        "pii", "suite name (genforget/evaluation/suites/: pii, quick, tofu, muse, bias_pairs) or a YAML path"
    )
    oracle: str = arg("", "retrained (retain-only) model dir: forget quality, PrivLeak")
    victim: str = arg("", "model before unlearning: recovered shares of audits")
    output_dir: str = arg("", "report dir (default runs/eval/<suite>-<time>)")
    overwrite: bool = arg(False, "replace a non-empty output_dir")
    set: list[str] = arg(
        factory=list, help="override suite keys: --set forget_split=forget05 scoring=open_unlearning"
    )
    force: bool = arg(False, "evaluate a model whose run record names another forget set")
    dump_examples: bool = arg(
        False,
        "also write per-example scores and generations to examples.FORGET-SET-CONTENT.jsonl "
        "(holds forget-set text and PII: off by default)",
    )
    num_threads: int = arg(1, "torch CPU threads")
    cache_dir: str = arg(
        "runs/eval-cache",
        "where oracle and victim scores are kept across calls, keyed by the SHA-256 of their "
        "model dirs and the suite ('' = off)",
    )


EXAMPLES_FILE = "examples.FORGET-SET-CONTENT.jsonl"


def eval_main(argv: list[str] | None = None) -> int:
    """``eval/run.py``: load models, run the suite, write the three report files."""
    import torch

    from genforget.api import load_model
    from genforget.evaluation.harness import load_suite, parse_overrides, run_suite
    from genforget.evaluation.report import write_report

    try:
        (args,) = parse_config((EvalScriptArgs,), argv)
        if not args.model:
            raise UsageError("--model is required (one or more model dirs)")
        suite = load_suite(args.suite, parse_overrides(args.set))
        if not args.force:
            _data_step(suite, check_forget_set, args.model, suite)
        out = check_output_dir(
            args.output_dir or f"runs/eval/{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}", args.overwrite
        )
        from genforget.evaluation.harness import build_suite_data

        data = _data_step(suite, build_suite_data, suite)  # bad data: one line, exit 2
        models, paths = {}, {}
        for role, path in (
            [("victim", args.victim)]
            + [(Path(m).name or m, m) for m in args.model]
            + [("oracle", args.oracle)]
        ):
            if path:
                if role in models:
                    raise UsageError(f"two models are named {role!r}; give them distinct directory names")
                models[role] = load_model(
                    path,
                    allow_pickle=args.allow_pickle,
                    trust_remote_code=args.trust_remote_code,
                    **args.quant_kwargs(),
                )
                paths[role] = path
                apply_chat_template_file(models[role][1], args.chat_template)
        _check_chats(data, models)
    except (UsageError, ValueError, FileNotFoundError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.num_threads)
    keys = _cache_keys(args, suite, data, paths)
    cached = {r: hit for r, k in keys.items() if (hit := read_scores(args.cache_dir, k)) is not None}
    scores: dict = {}
    report = run_suite(
        models,
        suite,
        data,
        method=_method_of(args.model),
        dump_examples=args.dump_examples,
        cached=cached,
        scores_out=scores,
    )
    for role, key in keys.items():
        if role in cached:
            print(f"[eval] {role}: scores read from the cache ({args.cache_dir}/{key[:12]}...json)")
        elif not args.dump_examples and role in scores:
            write_scores(args.cache_dir, key, *scores[role])
    examples = report.pop("_examples", None)
    report["config"]["models"] = {"victim": args.victim, "evaluated": args.model, "oracle": args.oracle}
    # All report files appear together (renamed into place) or not at all.
    with atomic_dir(out, args.overwrite) as tmp:
        paths = {k: out / p.name for k, p in write_report(report, tmp).items()}
        if examples is not None:
            _write_examples(tmp / EXAMPLES_FILE, examples)
    print(f"report: {paths['md']}, {paths['json']}, {paths['png']}")
    if examples is not None:
        print(f"per-example dump (holds forget-set content; keep it private): {out / EXAMPLES_FILE}")
    return 0


def _write_examples(path: Path, examples: dict[str, list[dict]]) -> None:
    """One JSON line per probe/answer and model, after a first line that says what the file holds."""
    with path.open("w") as f:
        f.write(
            json.dumps(
                {
                    "warning": "FORGET-SET CONTENT: prompts, generations and PII values of the evaluated "
                    "data. Written only because --dump_examples was given; never share it with a report."
                }
            )
            + "\n"
        )
        for model, rows in examples.items():
            for row in rows:
                f.write(json.dumps({"model": model, **row}) + "\n")


def check_forget_set(model_dirs: list[str], suite) -> None:
    """Refuse (a :class:`UsageError`) a model whose run record names a forget set other than the
    suite's: its "forget" numbers would describe people it was never asked to forget."""
    from genforget.evaluation.harness import suite_forget_fingerprint

    if suite.data == "none":  # no forget set to compare with (bias_pairs only)
        return
    expected = None
    for d in model_dirs:
        rec = Path(d) / "genforget_run.json"
        if not rec.is_file():
            continue
        recorded = json.loads(rec.read_text()).get("forget_sha256")
        if not recorded:
            continue
        expected = expected or suite_forget_fingerprint(suite)
        if recorded != expected:
            raise UsageError(
                f"{d} was unlearned on another forget set (sha256 {recorded[:12]}...) than suite "
                f"{suite.name!r} evaluates ({expected[:12]}...): its forget metrics would describe data "
                "it was never asked to forget. Use the matching suite (or --set its corpus/forget_split), "
                "or pass --force true to evaluate anyway"
            )


def _method_of(dirs: list[str]) -> str:
    """The unlearning method recorded in the (first) model dir's run record, if any."""
    for d in dirs:
        rec = Path(d) / "genforget_run.json"
        if rec.is_file():
            return json.loads(rec.read_text()).get("method", "unknown")
    return "unknown"


def _data_step(suite, fn, *args):
    """``fn(*args)``, with a data problem (a missing split, a bad record, an unreadable dataset)
    turned into a one-line :class:`UsageError` naming the suite: exit 2, never a traceback."""
    try:
        return fn(*args)
    except UsageError:
        raise
    except KeyError as e:
        raise UsageError(f"suite {suite.name!r} data ({suite.data}): a record has no field {e}") from e
    except (ValueError, OSError, TypeError, ImportError) as e:
        raise UsageError(f"suite {suite.name!r} data ({suite.data}): {e}") from e


def _check_chats(data, models: dict) -> None:
    """Chat data needs every evaluated model's tokenizer to have a chat template."""
    splits = [data.forget, data.retain, data.holdout, *data.general.values()]
    if not any(sp.chats for sp in splits):
        return
    for role, (_, tok) in models.items():
        if not getattr(tok, "chat_template", None):
            raise UsageError(
                f"the suite's data holds chats ('messages') but model {role!r} has no chat template; "
                "pass --chat_template FILE"
            )


def _cache_keys(args: EvalScriptArgs, suite, data, paths: dict[str, str]) -> dict[str, str]:
    """Cache keys of the oracle's and the victim's scores (see :mod:`genforget.eval_cache`)."""
    if not args.cache_dir or args.dump_examples:
        return {}
    fp = data_sha256(data)
    template = Path(args.chat_template).read_text() if args.chat_template else None
    load = {**args.quant_kwargs(), "chat_template": template}
    keys = {}
    for role in ("oracle", "victim"):
        if role in paths:
            ref = paths.get("oracle") if role != "oracle" else None
            key = score_key(paths[role], suite, fp, load, reference=ref)
            if key is not None:
                keys[role] = key
    return keys
