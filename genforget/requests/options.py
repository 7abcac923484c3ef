"""What ``genforget forget`` takes and gives: its options, the unlearning defaults for deletion
requests, the result, and where outputs go (shared by the identifier and association pipelines)."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from genforget.common_args import ChatTemplateArgs, OutputArgs, ThreadArgs, arg
from genforget.config import UnlearnConfig, UsageError
from genforget.requests.records import LocateResult


@dataclass
class ForgetArgs(ThreadArgs, ChatTemplateArgs, OutputArgs):
    """What ``genforget forget`` reads and writes, and its verification bars."""

    model: str = arg("", "save_pretrained dir of the trained model")
    data: str = arg(
        "",
        "TRAIN: a JSONL/parquet/txt file, a dir or glob of shards (.jsonl, .jsonl.gz, "
        ".jsonl.zst, .parquet), a saved dataset, or an fsspec URL; empty: zero-shot (the forget "
        "set is built from the model's own texts about the person, no corpus scanned)",
    )
    zero_shot_samples: int = arg(8, "no --data: sampled texts per prompt")
    adversarial: bool = arg(
        True, "adversarial probe families (rephrased, partial, hint), each <= extraction_bar"
    )
    request: list[str] = arg(factory=list, help="request file(s), YAML or JSON")
    output_dir: str = arg("", "new (or empty) dir: model/, certificate.json/.md")
    key_file: str = arg("", "controller HMAC key (default: next to the ledger)")
    ledger: str = arg("", "ledger JSONL (default: OUT/../ledger.jsonl)")
    text_field: str = arg("text", "JSONL field holding the text")
    retain_size: int = arg(256, "records without identifiers kept as retain set")
    retain_eval: int = arg(64, "of those, records probed for retained capability")
    samples: int = arg(4, "sampled continuations per probe (any-of-k; 0 = off)")
    work_ngram: int = arg(8, "kind: work: shared word n-gram length")
    near_dup: float = arg(0.2, "kind: work: near-duplicate bigram Jaccard of a window (0 = off)")
    image_samples: int = arg(8, "image takedown: generations per caption, before and after")
    image_max_distance: int = arg(10, "image takedown: perceptual-hash bits (of 64) a copy may differ by")
    workers: int = arg(0, "locate with N worker processes via datatrove (0 = in this process)")
    executor: str = arg("local", "locate executor: local | slurm | ray")
    executor_options: str = arg("", "YAML mapping (or file) for the datatrove executor, e.g. '{tasks: 64}'")
    extraction_bar: float = arg(0.10, "greedy extraction after must be <= this")
    sampled_bar: float = arg(0.25, "any-of-k extraction after must be <= this")
    auc_bar: float = arg(0.75, "min-k AUC located vs twins after must be <= this (>= 5 records)")
    # 0.75, not 1.0: one record against one twin is a noisy pair (their min-k differ by tens of
    # percent with neither trained on), and in a queue the calibrated stop equalises the mean
    # over all requests, not each one (test: two people ended at 0.80 and 1.0x, from 0.04x).
    member_ratio_bar: float = arg(0.75, "mean min-k located / twins after must be >= this")
    kept_bar: float = arg(0.90, "retain/collateral extraction kept >= this x before")
    ppl_bar: float = arg(1.50, "retain perplexity after <= this x before")
    flip_bar: float = arg(
        0.10, "kind: association: counterfactual flip / biased / reversed share after <= this"
    )
    save_mode: str = arg("auto", "auto | full | adapter")
    relearn_speed: bool = arg(
        True,
        "relearn-speed audit: fine-tune copies of the unlearned model on the located "
        "records and on their twins; certify both extraction curves and their gap",
    )
    relearn_budgets: list[int] = arg(
        factory=lambda: [0, 5, 10, 20, 40],
        help="relearn-speed audit: cumulative fine-tuning steps to measure at (from 0)",
    )
    relearn_bar: float = arg(0.10, "relearn-speed audit: largest gap to the twins' curve <= this")
    relearn_gate: bool = arg(
        False,
        "make the relearn-speed row count towards `passed` (off by default: plain NPO "
        "re-learns faster than a never-seen person and fails it, see docs/deletion-requests.md)",
    )


# A deletion request forgets few records (often one person's handful), so each step's forget
# gradient points the same way and Adam takes full-size steps along it; NPO's forget term is a
# *sum* over every identifier token while the retain term is a mean token NLL. Measured on the
# test victim (one person, 1 bio): lr 5e-4 / retain weight 3 kept 0.19x of other people's
# extraction, lr 1e-4 / retain weight 100 kept 1.0x with the forget extraction at 0. The stop is
# checked every step: with few forget records it is cheap, and 10 steps overshoot.
REQUEST_DEFAULTS = {
    "learning_rate": 1e-4,
    "retain_weight": 100.0,
    "beta": 0.02,
    "calibration_every": 1,
    "max_steps": 200,
    "retain_batch_size": 16,
}


@dataclass
class RequestUnlearnConfig(UnlearnConfig):
    """UnlearnConfig with the defaults of deletion requests (:data:`REQUEST_DEFAULTS`, applied to
    whichever method's config is built; ``beta`` only where the method has it)."""

    DEFAULTS: typing.ClassVar[dict] = REQUEST_DEFAULTS


@dataclass
class ForgetResult:
    """What :func:`forget_requests` did; ``located`` holds record texts: keep it in memory only."""

    certificates: list[dict]
    paths: list[Path]
    located: LocateResult | list  # kind: association: one AssociationLocateResult per request
    ledger: Path
    model_dir: Path | None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cert_paths(out: Path, n: int) -> list[Path]:
    return [out / "certificate.json"] if n == 1 else [out / f"certificate-{i + 1}.json" for i in range(n)]


def resolve_paths(args: ForgetArgs) -> tuple[Path, Path, Path]:
    """``(output_dir, ledger, key_file)`` with defaults, refusing a non-empty output dir."""
    from genforget.io import check_output_dir

    out = check_output_dir(args.output_dir, args.overwrite)
    ledger = Path(args.ledger) if args.ledger else out.resolve().parent / "ledger.jsonl"
    key = Path(args.key_file) if args.key_file else ledger.parent / "controller.key"
    if ledger.exists() and not ledger.is_file():
        raise UsageError(f"--ledger {ledger} is not a file")
    return out, ledger, key
