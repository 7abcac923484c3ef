"""``make demo-bias``: remove a learned association with a protected attribute, measured counterfactually.

The built-in loan corpus (:mod:`genforget.data.bias`) has a biased slice: borderline
applications decided by nationality. The victim, a tiny Llama trained on every record, learns
the bias for applicants it never saw; the oracle, the same recipe retrained without the slice,
learns the rule alone. A ``kind: association`` request naming the attribute, the outcomes and
the fair rule goes through ``genforget forget`` (:func:`~genforget.requests.forget_requests`):
it locates the slice (precision/recall against the corpus's ground truth), unlearns the biased
decisions with their counterfactual twins as retain set, and writes a certificate and a ledger
entry. Victim, unlearned model and oracle are then measured on held-out applicants
(:mod:`genforget.demos.bias_report`): counterfactual gap and flip share (with their sign),
demographic parity on matched applicants, task accuracy against the rule; and the relearn
audit fine-tunes each on the biased slice for 0-40 steps.

Victim and oracle are cached under ``<output_dir>/victim`` / ``oracle`` keyed by their data and
config. The training JSONL names the (fictitious) applicants, so it is written outside
``output_dir``; a check verifies that no file under ``output_dir`` holds a biased record's name.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from genforget.config import UnlearnConfig, UsageError
from genforget.data.bias import OUTCOMES, RULE_FIELD, THRESHOLD, BiasCorpus, build_bias_corpus
from genforget.demos.cache import (
    cached_lm,
    lm_key,
    tiny_lm_trainer,
    write_jsonl,
)
from genforget.demos.checks import as_dicts, check_budgets
from genforget.demos.options import BiasDemoArgs
from genforget.lm.victim import VictimConfig
from genforget.train_cache import texts_sha256


def request_document(corpus: BiasCorpus) -> dict:
    """The ``kind: association`` request of the demo: the attribute as the records write it,
    the outcome words and the fair rule (no personal data)."""
    return {
        "id": "BIAS-DEMO-0001",
        "kind": "association",
        "attribute": {"name": "nationality", "values": list(corpus.values)},
        "outcome": {"positive": OUTCOMES[0], "negative": OUTCOMES[1]},
        "rule": {"field": RULE_FIELD, "positive_if": f">= {THRESHOLD}"},
    }


def cached_train(texts: list[str], vocab: list[str], vcfg: VictimConfig, out: Path, tok=None, desc: str = ""):
    """Train a tiny Llama on ``texts`` (tokenizer trained on ``vocab`` unless ``tok`` is given),
    or load it from ``out`` when it was trained on exactly these texts with this config."""
    key = lm_key(texts, vcfg, vocab_sha256=texts_sha256(vocab))
    train = tiny_lm_trainer(texts, vcfg, tok, vocab, desc)
    return cached_lm(out, key, train, "demo-bias", desc, f"{len(texts)} records ({vcfg.max_steps} steps)")


def _check_args(args: BiasDemoArgs) -> None:
    if not 0 < args.biased_share < 0.5:
        raise UsageError(f"biased_share must be in (0, 0.5) (got {args.biased_share})")
    if not 1 <= args.band_low < THRESHOLD <= args.band_high <= 9:
        raise UsageError(
            f"band_low..band_high must straddle the threshold {THRESHOLD} within 1..9 "
            f"(got {args.band_low}..{args.band_high})"
        )
    check_budgets(args, "relearn_budgets")
    if args.n_train < 50 or args.n_heldout < 10:
        raise UsageError("n_train must be >= 50 and n_heldout >= 10")


def run_bias_demo(args: BiasDemoArgs, ucfg: UnlearnConfig) -> dict:
    """Build the corpus, train (or load) victim and oracle, run the association request, measure,
    audit, report (``report.json`` / ``.md`` / ``.png`` and ``bias.png`` in ``output_dir``)."""
    from genforget.demos.bias_report import evaluate_models, relearn_audit, write_bias_report
    from genforget.requests.association_locate import precision_recall
    from genforget.requests.pipeline import ForgetArgs, forget_requests
    from genforget.requests.request import parse_request

    _check_args(args)
    args.set_threads()
    t_start = time.perf_counter()
    out = Path(args.output_dir)
    try:
        corpus = build_bias_corpus(
            args.n_train, args.n_heldout, args.biased_share, (args.band_low, args.band_high), args.corpus_seed
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    out.mkdir(parents=True, exist_ok=True)
    recs = corpus.records()
    data = write_jsonl(args.training_file(), recs)  # it names the applicants: outside the run dir
    vocab = [r["text"] for r in recs] + [a.text() for a in corpus.split("heldout")]
    vcfg = args.victim_config()
    texts = [r["text"] for r in recs]
    victim, tok, victim_s = cached_train(texts, vocab, vcfg, out / "victim", desc="victim")
    timings = {"train_victim_s": victim_s}
    models = {"victim": victim}
    if args.oracle:
        clean = [a.text() for a in corpus.training(clean_only=True)]
        oracle, _, timings["train_oracle_s"] = cached_train(
            clean, vocab, vcfg, out / "oracle", tok=tok, desc="retrain without the biased slice (oracle)"
        )

    req_doc = request_document(corpus)
    (out / "request.yaml").write_text(yaml.safe_dump(req_doc, sort_keys=False))
    req = parse_request(req_doc, str(out / "request.yaml"))
    forget_dir = out / "forget"
    fargs = ForgetArgs(
        model=str(out / "victim"),
        data=str(data),
        output_dir=str(forget_dir),
        ledger=str(out / "ledger.jsonl"),
        key_file=str(out / "controller.key"),
        overwrite=True,
    )
    print(f"[demo-bias] the association request: locate, unlearn with {ucfg.method}, verify, certify")
    result = forget_requests(fargs, ucfg, [req])
    res = result.located[0]
    truth = {f"{data.name}:{i + 1}" for i in corpus.biased_ids}  # rid = "<file>:<1-based line>"
    found = {**precision_recall({r.rid for r in res.located}, truth), **res.summary(), "biased": len(truth)}
    print(
        f"[demo-bias] located {found['located']} records: precision {found['precision']:.2f}, recall {found['recall']:.2f}"
    )
    cert = result.certificates[0]
    timings["unlearn_s"] = cert["times"].get("unlearn_s", float("nan"))
    if result.model_dir is None:
        raise UsageError("the association request located nothing: is biased_share > 0?")
    from genforget.api import load_model

    models["unlearned"], _ = load_model(result.model_dir)
    if args.oracle:
        models["oracle"] = oracle

    print(f"[demo-bias] measuring {len(models)} models on {args.n_heldout} held-out applicants")
    t0 = time.perf_counter()
    report = evaluate_models(models, tok, corpus)
    timings["evaluate_s"] = time.perf_counter() - t0
    if args.relearn_budgets:
        print(f"[demo-bias] relearn audit: fine-tuning on the biased slice for {args.relearn_budgets} steps")
        t0 = time.perf_counter()
        biased = [{"text": a.text()} for a in corpus.training() if a.biased]
        report["relearn"] = relearn_audit(models, tok, corpus, biased, args)
        timings["relearn_s"] = time.perf_counter() - t0
    report["method"] = ucfg.method
    report["timings"] = {**timings, "total_s": time.perf_counter() - t_start}
    report["certificate"] = {
        "passed": cert["passed"],
        "status": cert["status"],
        "verification": cert["verification"],
        "path": str(result.paths[0]),
    }
    report["config"] = {
        **as_dicts(demo=args, unlearn=ucfg, victim=vcfg),
        "corpus": corpus.meta,
        "request": req_doc,
        "locate": found,
    }
    names = [a.name for a in corpus.training() if a.biased]
    return write_bias_report(report, out, names)
