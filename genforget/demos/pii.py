"""The offline demo: memorise -> forget -> verify on the built-in fictitious-PII corpus.

``make demo`` runs ``recipes/demo.py --config recipes/configs/demo.yaml``, which calls
:func:`run_demo`. The victim and the retain-only oracle are cached in ``<output_dir>/victim`` and
``<output_dir>/oracle`` (keyed by their config and data: :mod:`genforget.demos.cache`), so a second run only unlearns and evaluates.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from genforget.adapters import save_model
from genforget.config import UnlearnConfig
from genforget.data.loaders import fingerprint
from genforget.data.pii import PIICorpus, PIICorpusArgs
from genforget.demos.cache import cached_corpus_lm
from genforget.demos.checks import as_dicts, bar_checks, oracle_gap_rows, show_report
from genforget.demos.options import DemoArgs
from genforget.evaluation.harness import Suite, run_suite
from genforget.evaluation.report import write_report
from genforget.lm.trainer import unlearn_lm
from genforget.lm.victim import VICTIM_PRESETS, VictimConfig


def split_demo_config(path: str | Path) -> tuple[DemoArgs, dict]:
    """A demo YAML (``recipes/configs/demo.yaml``) as its :class:`DemoArgs` and the remaining
    :class:`~genforget.config.UnlearnConfig` keys, for scripts that rerun the demo's setting."""
    import yaml

    from genforget.config import make_config

    raw = yaml.safe_load(Path(path).read_text())
    demo_keys = {f.name for f in dataclasses.fields(DemoArgs)}
    return make_config(DemoArgs, {k: v for k, v in raw.items() if k in demo_keys}), {
        k: v for k, v in raw.items() if k not in demo_keys
    }


def demo_checks(models: dict[str, dict], timings: dict[str, float], speed: dict | None = None) -> list[dict]:
    """The acceptance bars of the demo, evaluated on its own numbers (``speed``: the report's
    relearn-speed audit, shown as a check that does not gate the exit code: ``gate: False``)."""
    v, u = models["victim"], models["unlearned"]
    rows = [
        ("victim forget PII extraction", v["forget_pii_extraction"], ">= 0.80"),
        ("victim forget verbatim extraction", v["forget_verbatim_extraction"], ">= 0.80"),
        ("unlearned forget PII extraction", u["forget_pii_extraction"], "<= 0.10"),
        ("unlearned forget verbatim extraction", u["forget_verbatim_extraction"], "<= 0.10"),
    ]
    r = u["retain_pii_extraction"] / max(v["retain_pii_extraction"], 1e-9)
    rows.append(("retain PII extraction, unlearned / victim", r, ">= 0.90"))
    rows.append(
        ("retain perplexity, unlearned / victim", u["retain_perplexity"] / v["retain_perplexity"], "<= 1.50")
    )
    if "oracle" in models and "mia_min_k_auc" in u:
        # Neither still member-like nor suspiciously unlike unseen data: as a retrain would be.
        r = abs(u["mia_min_k_auc"] - models["oracle"]["mia_min_k_auc"])
        rows.append(("forget MIA min-k AUC, |unlearned - oracle|", r, "<= 0.10"))
    r = timings["unlearn_s"] / timings["train_oracle_s"]
    rows.append(("unlearn time / oracle retrain time", r, "<= 0.10"))
    # Shown with its bar but not gating: the remedy that holds (robust_pii.yaml, UNDO) costs
    # retained PII on this tiny model, so the demo keeps plain NPO.
    rows += oracle_gap_rows(speed, "relearn speed: largest forget-extraction gap to the oracle")
    return bar_checks(rows)


@dataclass
class DemoModels:
    """The demo's corpus and its two trained models (with their training times)."""

    corpus: PIICorpus
    victim: torch.nn.Module
    oracle: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    victim_s: float
    oracle_s: float
    victim_config: VictimConfig


def demo_victim_config(args: DemoArgs) -> VictimConfig:
    """The config victim and oracle are trained with: ``args.victim_preset`` with
    ``args.victim_steps`` (0: the preset's) and the corpus's seed."""
    if args.victim_preset not in VICTIM_PRESETS:
        raise ValueError(
            f"victim_preset must be one of {sorted(VICTIM_PRESETS)} (got {args.victim_preset!r})"
        )
    steps = args.victim_steps or VICTIM_PRESETS[args.victim_preset].max_steps
    return dataclasses.replace(VICTIM_PRESETS[args.victim_preset], max_steps=steps, seed=args.corpus_seed)


def demo_models(args: DemoArgs) -> DemoModels:
    """Build the corpus and train (or load from ``args.output_dir``) the victim and the oracle."""
    args.set_threads()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = args.build_corpus()
    vcfg = demo_victim_config(args)
    victim, tok, victim_s = cached_corpus_lm(
        corpus, ("forget", "retain"), vcfg, out / "victim", desc="victim"
    )
    oracle, _, oracle_s = cached_corpus_lm(
        corpus, ("retain",), vcfg, out / "oracle", tokenizer=tok, desc="oracle"
    )
    return DemoModels(corpus, victim, oracle, tok, victim_s, oracle_s, vcfg)


def demo_suite(args: DemoArgs, name: str) -> Suite:
    """The eval suite of the demo's corpus: only the relearn-speed audit (``make eval`` runs all)."""
    return Suite(
        name=name,
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(PIICorpusArgs)},
        audits=["relearn_speed"] if args.relearn_speed else [],
    )


def run_demo(args: DemoArgs, ucfg: UnlearnConfig) -> dict:
    """Build corpus, train (or load) victim and oracle, unlearn, evaluate all three, report."""
    out = Path(args.output_dir)
    dm = demo_models(args)
    corpus, victim, oracle, tok, vcfg = dm.corpus, dm.victim, dm.oracle, dm.tokenizer, dm.victim_config
    victim_s, oracle_s = dm.victim_s, dm.oracle_s

    forget, retain = corpus.unlearn_examples("forget"), corpus.full_text_examples("retain")
    print(
        f"[demo] unlearning {len(corpus.persons('forget'))} people and {len(corpus.texts('forget'))} passages "
        f"with {ucfg.method}{' (LoRA)' if ucfg.use_lora else ''}"
    )
    t0 = time.perf_counter()
    calibration = corpus.calibration_examples() if args.calibrated_stop else None
    unlearned = unlearn_lm(copy.deepcopy(victim), tok, forget, retain, ucfg, calibration=calibration)
    unlearn_s = time.perf_counter() - t0
    data = {"forget_examples": len(forget), "forget_sha256": fingerprint(forget)}
    data.update(retain_examples=len(retain), retain_sha256=fingerprint(retain))
    card = {"config": dataclasses.asdict(ucfg), "data": data}
    mode = save_model(unlearned, tok, out / "unlearned", card=card)

    (out / "unlearned" / "genforget_run.json").write_text(
        json.dumps(
            {
                "method": ucfg.method,
                "config": dataclasses.asdict(ucfg),
                "unlearn_s": unlearn_s,
                "forget_examples": len(forget),
                "forget_sha256": fingerprint(forget),
            },
            indent=2,
        )
    )

    suite = demo_suite(args, "demo")
    models = {"victim": (victim, tok), "unlearned": (unlearned, tok), "oracle": (oracle, tok)}
    print("[demo] evaluating victim, unlearned and oracle")
    report = run_suite(models, suite, method=ucfg.method)
    timings = {"train_victim_s": victim_s, "train_oracle_s": oracle_s, "unlearn_s": unlearn_s}
    report["timings"] = {**timings, **report["timings"]}
    report["config"].update(as_dicts(unlearn=ucfg, demo=args, victim=vcfg), saved_as=mode)
    report["checks"] = demo_checks(report["models"], timings, report.get("relearn_speed"))
    # The card written at save time knew no figures; now the demo's checks (numbers and bars only)
    # and the unlearned model's metrics go next to the weights, as a deletion request's card has.
    from genforget.lm.model_card import write_lm_card

    write_lm_card(
        out / "unlearned",
        unlearned,
        adapter=mode == "adapter",
        **card,
        verification=report["checks"],
        metrics=report["models"]["unlearned"],
    )
    paths = write_report(report, out)
    show_report(report)
    print(
        f"\n[demo] unlearn {unlearn_s:.1f}s vs oracle retrain {oracle_s:.1f}s; report: {paths['md']}, {paths['png']}"
    )
    return report
