"""``make demo-copyright``: a copyright takedown on tiny Shakespeare (public domain).

A tiny Llama memorises excerpts of all nine plays; the oracle is retrained without the
taken-down play; every LM method unlearns that play (per-method settings from the config's
``method_settings``). Reported per model (MUSE, Shi et al. 2024, arXiv:2407.06460): VerbMem and
KnowMem on the taken-down play (``forget_*``) and on the other eight (``retain_*``), min-k % MIA
of the play's trained excerpts against excerpts of it never trained on, the other plays'
perplexity, and the time. KnowMem asks who speaks next: the closing line of a speech is the
question, the next speaker the answer (:func:`genforget.data.shakespeare.speaker_cloze`).

The victim and the oracle are cached under ``<output_dir>/victim`` / ``oracle``, keyed by the
training texts' SHA-256 and the model config, so a second run only unlearns and evaluates.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from genforget.config import UnlearnConfig, UsageError
from genforget.data.shakespeare import PLAYS, excerpts, load_plays, speaker_cloze, split_plays
from genforget.demos.cache import cached_lm, lm_key, tiny_lm_trainer, write_jsonl
from genforget.demos.checks import add_section, as_dicts, bar_check, bar_checks, show_report
from genforget.demos.options import CopyrightDemoArgs
from genforget.evaluation.harness import Suite, SuiteData, run_suite
from genforget.evaluation.metrics.muse import verbmem_probes
from genforget.evaluation.report import write_report
from genforget.evaluation.split import EvalSplit
from genforget.lm.trainer import unlearn_lm
from genforget.lm.victim import VictimConfig

REPO = Path(__file__).resolve().parents[2]  # the checkout (genforget/demos/ is two below)
COLUMNS = [  # (key, label) of the takedown table
    ("forget_verbmem", "taken-down VerbMem ↓"),
    ("forget_knowmem", "taken-down KnowMem ↓"),
    ("retain_verbmem", "other plays VerbMem ↑"),
    ("retain_knowmem", "other plays KnowMem ↑"),
    ("retain_perplexity", "other plays ppl ↓"),
    ("mia_min_k_auc", "MIA min-k AUC (0.5 = unseen)"),
]


def _plays(p: str) -> dict[str, list]:
    """The plays of ``builtin:shakespeare`` (packaged) or of a tiny Shakespeare file."""
    if p == "builtin:shakespeare":
        from genforget.data.packaged import shakespeare_text

        return split_plays(shakespeare_text())
    path = Path(p)
    for cand in [path] if path.is_absolute() else [path, REPO / path]:
        if cand.is_file():
            return load_plays(cand)
    raise UsageError(f"data: file not found: {p} (builtin:shakespeare, or a tiny Shakespeare input.txt)")


def lm_methods() -> list[str]:
    """Every registered method that works on language models."""
    from genforget.methods.registry import METHODS

    return sorted(n for n, cls in METHODS.items() if "lm" in cls.modalities)


def plain_text_methods() -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """LM methods that run on excerpts alone, and the others with the example fields they need
    (``dpo`` reads a preferred answer from each record, which a takedown's excerpts do not have)."""
    from genforget.methods.registry import METHODS

    needs = {n: METHODS[n].example_fields for n in lm_methods()}
    return [n for n, f in needs.items() if not f], {n: f for n, f in needs.items() if f}


def method_configs(args: CopyrightDemoArgs, ucfg: UnlearnConfig) -> dict[str, UnlearnConfig]:
    """One :class:`UnlearnConfig` per method: ``ucfg`` with the method's ``method_settings``."""
    names = args.methods
    if not names:
        names, skipped = plain_text_methods()
        for n, fields in skipped.items():
            print(f"[demo-copyright] not run: {n} (needs {', '.join(fields)} on every forget example)")
    elif unfit := {n: f for n, f in plain_text_methods()[1].items() if n in names}:
        raise UsageError(
            f"methods: {sorted(unfit)} need fields the takedown's excerpts do not have "
            f"({unfit}); drop them from methods"
        )
    bad = [n for n in [*names, *args.method_settings] if n not in lm_methods()]
    if bad:
        raise UsageError(f"methods / method_settings: not LM methods: {bad}; available: {lm_methods()}")
    out = {}
    for n in names:
        try:
            out[n] = dataclasses.replace(ucfg, method=n, **(args.method_settings.get(n) or {}))
        except (TypeError, ValueError) as e:
            raise UsageError(f"method_settings.{n}: {e}") from e
    return out


@dataclass
class Takedown:
    """The demo's texts: trained excerpts per play, the taken-down play's held-out ones."""

    train: dict[str, list]  # play -> excerpts trained on
    holdout: list  # excerpts of the taken-down play never trained on
    takedown: str

    def docs(self, without: str | None = None) -> list[str]:
        return [e.text for play, exs in self.train.items() if play != without for e in exs]


def build_takedown(args: CopyrightDemoArgs) -> Takedown:
    """Excerpts of every play; the taken-down play gets ``holdout_excerpts`` more, never trained."""
    titles = [t for t, _ in PLAYS]
    if args.excerpts_per_play < 1 or args.holdout_excerpts < 1:
        raise UsageError("excerpts_per_play and holdout_excerpts must be >= 1")
    if args.takedown not in titles:
        raise UsageError(f"takedown must be one of {titles} (got {args.takedown!r})")
    plays = _plays(args.data)
    train, holdout = {}, []
    for title, sp in plays.items():
        n = args.excerpts_per_play + (args.holdout_excerpts if title == args.takedown else 0)
        exs = excerpts(title, sp, n, args.excerpt_chars)
        if title == args.takedown:
            # Held-out ones spread evenly over the play (not its end only).
            step = n / args.holdout_excerpts
            hold = {int(j * step + step / 2) for j in range(args.holdout_excerpts)}
            holdout = [e for i, e in enumerate(exs) if i in hold]
            exs = [e for i, e in enumerate(exs) if i not in hold]
        train[title] = exs
    return Takedown(train, holdout, args.takedown)


def _cached_lm(docs: list[str], vcfg: VictimConfig, out: Path, tok=None, desc: str = "") -> tuple:
    """A tiny Llama trained on exactly ``docs`` (its tokenizer too, unless ``tok``), or loaded."""
    key = lm_key(docs, vcfg, sep="\x00")
    what = f"{len(docs)} excerpts ({vcfg.max_steps} steps)"
    return cached_lm(out, key, tiny_lm_trainer(docs, vcfg, tok, desc=desc), "demo-copyright", desc, what)


def takedown_data(td: Takedown, tok, args: CopyrightDemoArgs) -> SuiteData:
    """Evaluation splits: ``forget`` = the taken-down play's trained excerpts, ``retain`` = the
    other eight plays', ``holdout`` = the play's never-trained excerpts (MIA non-members)."""

    def split(exs: list) -> EvalSplit:
        texts = [e.text for e in exs]
        return EvalSplit(
            texts=[{"text": t} for t in texts],
            verbmem=verbmem_probes(texts, tok, args.prefix_tokens),
            knowmem=[q for e in exs for q in speaker_cloze(e, args.qa_per_excerpt)],
        )

    others = [e for play, exs in td.train.items() if play != td.takedown for e in exs]
    return SuiteData(
        forget=split(td.train[td.takedown]),
        retain=split(others),
        holdout=EvalSplit(texts=[{"text": e.text} for e in td.holdout]),
        general={},
        relearn_units=[],
        paraphrase=EvalSplit(),
    )


def best_method(models: dict[str, dict], methods: list[str]) -> str:
    """The method with the lowest taken-down VerbMem among those keeping the other plays'
    VerbMem at >= 0.9x the victim's (all methods when none does)."""
    v = models["victim"]["retain_verbmem"]
    keep = [m for m in methods if models[m]["retain_verbmem"] >= 0.9 * v] or methods
    return min(keep, key=lambda m: models[m]["forget_verbmem"])


def copyright_checks(models: dict[str, dict], best: str) -> list[dict]:
    """The issue's bars on the best method, plus informational ones (``gate: False``)."""
    v, o, b = models["victim"], models["oracle"], models[best]
    r = b["retain_verbmem"] / max(v["retain_verbmem"], 1e-9)
    return bar_checks(
        [
            (f"{best}: taken-down VerbMem - oracle's", b["forget_verbmem"] - o["forget_verbmem"], "<= 0.05"),
            (f"{best}: other plays VerbMem / victim's", r, ">= 0.90"),
            ("victim: taken-down VerbMem (memorised)", v["forget_verbmem"], ">= 0.50 (informational)"),
            (
                f"{best}: |MIA min-k AUC - oracle's|",
                abs(b["mia_min_k_auc"] - o["mia_min_k_auc"]),
                "<= 0.10 (informational)",
            ),
        ]
    )


def takedown_table(models: dict[str, dict], timings: dict[str, float]) -> str:
    """Models as rows, the takedown columns, the unlearning (or training) seconds last."""
    head = "| model | " + " | ".join(lab for _, lab in COLUMNS) + " | seconds |"
    lines = [head, "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name, m in models.items():
        s = timings.get(f"unlearn_{name}_s", timings.get(f"train_{name}_s"))
        cells = [f"{m[k]:.3f}" if k in m else "—" for k, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s:.1f} |")
    return "\n".join(lines)


def plays_text(args: CopyrightDemoArgs) -> str:
    """The whole text of the taken-down play: what a publisher's takedown notice hands over."""
    return "\n\n".join(s.text for s in _plays(args.data)[args.takedown])


def locate_takedown(td: Takedown, work: str, out: Path) -> tuple[list[dict], dict]:
    """The takedown as a ``kind: work`` deletion request over the training data: the records that
    share long word n-grams with the work, each with the shared regions as spans (the forget set),
    and how well that matches the excerpts actually taken from the play (numbers only)."""
    from genforget.requests import locate, parse_request

    out.mkdir(parents=True, exist_ok=True)
    # The request's inputs (public-domain text, like the catalogue itself) in a folder of their own.
    (out / "request").mkdir(parents=True, exist_ok=True)
    data, doc = out / "request" / "train.jsonl", out / "request" / "takedown-work.txt"
    rows = [
        {"id": f"{play}-{i}", "text": e.text} for play, exs in td.train.items() for i, e in enumerate(exs)
    ]
    write_jsonl(data, rows)
    doc.write_text(work)
    req = parse_request({"id": f"TAKEDOWN-{td.takedown}", "kind": "work", "documents": [str(doc)]})
    res = locate([req], data)
    truth = {e.text for e in td.train[td.takedown]}
    got = {r.text for r in res.located}
    hits = len(got & truth)
    found = {
        "request": "kind: work",
        "records": len(res.located),
        "precision": hits / len(got) if got else 0.0,
        "recall": hits / len(truth),
        "work_ngram": res.work_ngram,
        "span_coverage": sum(b - a for r in res.located for a, b in r.spans()) / max(1, sum(map(len, got))),
    }
    print(
        f"[demo-copyright] takedown request located {found['records']} records "
        f"(precision {found['precision']:.2f}, recall {found['recall']:.2f} against the play's excerpts)"
    )
    if not res.located:
        raise UsageError(f"the takedown request for {td.takedown!r} located no training record")

    # A record that is the work through and through is forgotten as a whole text (IdK-style methods
    # then keep its opening as the prompt); a record quoting the work keeps its shared regions as spans.
    def example(r) -> dict:
        covered = sum(b - a for a, b in r.spans())
        return {"text": r.text} if covered >= 0.9 * len(r.text) else {"text": r.text, "spans": r.spans()}

    return [example(r) for r in res.located], found


def run_copyright_demo(args: CopyrightDemoArgs, ucfg: UnlearnConfig) -> dict:
    """Train (or load) victim and oracle, unlearn the taken-down play with every method, report."""
    args.set_threads()
    t_start = time.perf_counter()
    cfgs = method_configs(args, ucfg)
    out = Path(args.output_dir)
    td = build_takedown(args)
    vcfg = args.victim_config()
    victim, tok, victim_s = _cached_lm(td.docs(), vcfg, out / "victim", desc="victim")
    oracle, _, oracle_s = _cached_lm(td.docs(without=td.takedown), vcfg, out / "oracle", tok, "oracle")
    forget, found = locate_takedown(td, plays_text(args), out)
    retain = [{"text": t} for t in td.docs(without=td.takedown)]
    models = {"victim": (victim, tok), "oracle": (oracle, tok)}
    timings = {"train_victim_s": victim_s, "train_oracle_s": oracle_s}
    for name, cfg in cfgs.items():
        print(f"[demo-copyright] unlearning {len(forget)} excerpts of the taken-down play with {name}")
        t0 = time.perf_counter()
        models[name] = (unlearn_lm(copy.deepcopy(victim), tok, forget, retain, cfg), tok)
        timings[f"unlearn_{name}_s"] = time.perf_counter() - t0
    print(f"[demo-copyright] evaluating {len(models)} models")
    suite = Suite(name="copyright", audits=[], any_k=0)
    report = run_suite(models, suite, data=takedown_data(td, tok, args), method="all LM methods")
    report["timings"] = {**timings, **report["timings"], "total_s": time.perf_counter() - t_start}
    best = best_method(report["models"], list(cfgs))
    located = min(found["precision"], found["recall"])
    report["checks"] = copyright_checks(report["models"], best) + [
        bar_check(
            "kind: work request located the play's trained excerpts, min(precision, recall)",
            located,
            ">= 1.00",
        )
    ]
    report["config"].update(
        **as_dicts(demo=args, victim=vcfg),
        unlearn={n: dataclasses.asdict(c) for n, c in cfgs.items()},
        best_method=best,
        excerpts={p: len(e) for p, e in td.train.items()} | {"holdout": len(td.holdout)},
        knowmem="who speaks next: a speech's closing line -> the next speaker",
        takedown_request=found,
    )
    paths = write_report(report, out)
    table = takedown_table(report["models"], report["timings"])
    add_section(paths["md"], f"Takedown of {td.takedown}", table)
    show_report(report, table)
    print(
        f"\n[demo-copyright] best method {best}; total {report['timings']['total_s']:.0f}s; report: {paths['md']}"
    )
    return report
