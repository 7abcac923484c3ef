"""``genforget train-victim`` / ``recipes/train_victim.py``: train the tiny memorising victim or
the retain-only oracle on the built-in corpus."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field

from genforget.cli.common import check_output_dir
from genforget.config import UsageError, parse_config


@dataclass
class VictimScriptArgs:
    """Corpus and output of ``recipes/train_victim.py``."""

    output_dir: str = field(default="", metadata={"help": "new (or empty) dir for the model"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output_dir"})
    splits: list[str] = field(
        default_factory=lambda: ["forget", "retain"],
        metadata={"help": "victim: forget retain; oracle: retain"},
    )
    tokenizer_from: str = field(
        default="", metadata={"help": "reuse this model dir's tokenizer (oracle: the victim's)"}
    )
    n_people: int = field(default=200, metadata={"help": "people trained on (forget + retain)"})
    n_passages: int = field(default=50, metadata={"help": "passages trained on"})
    forget_frac: float = field(default=0.1, metadata={"help": "forget share"})
    corpus_seed: int = field(default=0, metadata={"help": "corpus seed"})
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads"})


def train_victim_main(argv: list[str] | None = None) -> int:
    """``recipes/train_victim.py``: train a victim or oracle and ``save_pretrained`` it."""
    import torch
    from transformers import AutoTokenizer

    from genforget.data.pii import build_pii_corpus
    from genforget.lm.victim import VictimConfig, train_victim

    try:
        args, vcfg = parse_config((VictimScriptArgs, VictimConfig), argv)
        out = check_output_dir(args.output_dir, args.overwrite)
        bad = [s for s in args.splits if s not in ("forget", "retain")]
        if bad or not args.splits:
            raise UsageError(f"splits must be among forget, retain (got {args.splits})")
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_from) if args.tokenizer_from else None
        corpus = build_pii_corpus(args.n_people, args.n_passages, args.forget_frac, seed=args.corpus_seed)
    except (UsageError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.num_threads)
    if out.is_dir() and args.overwrite:
        shutil.rmtree(out)
    _, _, seconds = train_victim(corpus, tuple(args.splits), vcfg, tokenizer=tokenizer, output_dir=out)
    print(f"trained on {'+'.join(args.splits)} in {seconds:.1f}s; saved to {out}")
    return 0
