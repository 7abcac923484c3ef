"""``genforget train-victim`` / ``recipes/train_victim.py``: train the tiny memorising victim or
the retain-only oracle on the built-in corpus."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from genforget.cli.args import parse_config
from genforget.cli.common import check_output_dir
from genforget.common_args import LoadingArgs, OutputArgs, ThreadArgs, arg
from genforget.config import UsageError
from genforget.data.pii import PIICorpusArgs
from genforget.io import atomic_dir


@dataclass
class VictimScriptArgs(ThreadArgs, PIICorpusArgs, LoadingArgs, OutputArgs):
    """Corpus and output of ``recipes/train_victim.py``."""

    data: str = arg(
        "pii",
        "pii (the built-in corpus), tofu:<dir or hub id>:<split> (TOFU: full for the victim, "
        "retain90/95/99 for the oracle) or a JSONL path of text / question+answer examples",
    )
    model_name_or_path: str = arg(
        "", "fine-tune this causal LM (dir or hub id); empty: a tiny Llama sized by the fields below"
    )
    splits: list[str] = arg(
        factory=lambda: ["forget", "retain"], help="victim: forget retain; oracle: retain"
    )
    tokenizer_from: str = arg("", "reuse this model dir's tokenizer (oracle: the victim's)")
    num_threads: int = arg(1, "torch CPU threads")


def train_victim_main(argv: list[str] | None = None) -> int:
    """``recipes/train_victim.py``: train a victim or oracle and ``save_pretrained`` it."""
    from transformers import AutoTokenizer

    from genforget.lm.victim import VictimConfig, train_victim

    try:
        args, vcfg = parse_config((VictimScriptArgs, VictimConfig), argv)
        out = check_output_dir(args.output_dir, args.overwrite)
        prepared = (
            _prepare_data_training(args, vcfg) if args.data != "pii" or args.model_name_or_path else None
        )
        bad = [s for s in args.splits if s not in ("forget", "retain")]
        if bad or not args.splits:
            raise UsageError(f"splits must be among forget, retain (got {args.splits})")
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_from) if args.tokenizer_from else None
        corpus = args.build_corpus()
    except (UsageError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.set_threads()
    if prepared is not None:
        return _train_on_data(args, vcfg, out, *prepared)
    model, tokenizer, seconds = train_victim(corpus, tuple(args.splits), vcfg, tokenizer=tokenizer)
    with atomic_dir(out, args.overwrite) as tmp:  # complete or absent, whatever kills the process
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    print(f"trained on {'+'.join(args.splits)} in {seconds:.1f}s; saved to {out}")
    return 0


def _prepare_data_training(args: VictimScriptArgs, vcfg) -> tuple:
    """``(model, tokenizer, texts)`` for ``--data`` other than pii; usage problems raise."""
    from genforget.data.loaders import load_data_spec
    from genforget.lm.data import normalise_example
    from genforget.lm.victim import build_model, train_tokenizer

    if args.data == "pii":
        raise UsageError("model_name_or_path with data=pii: fine-tune on pii is not supported; pass --data")
    rows = load_data_spec(args.data)
    if not rows:
        raise UsageError(f"data {args.data!r} holds no examples")
    texts = [normalise_example(r)["text"] for r in rows]
    if args.model_name_or_path:
        from genforget.api import load_model

        model, tokenizer = load_model(
            args.model_name_or_path, allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code
        )
    else:
        from transformers import AutoTokenizer

        tokenizer = (
            AutoTokenizer.from_pretrained(args.tokenizer_from)
            if args.tokenizer_from
            else train_tokenizer(texts, vcfg.vocab_size)
        )
        model = build_model(vcfg, tokenizer)
    if tokenizer.eos_token is None:
        raise UsageError(f"{args.model_name_or_path}: the tokenizer has no EOS token to end documents with")
    return model, tokenizer, texts


def _train_on_data(args: VictimScriptArgs, vcfg, out, model, tokenizer, texts: list[str]) -> int:
    """Fine-tune ``model_name_or_path`` (or a fresh tiny Llama) on TOFU or JSONL examples: the
    usual first step of a TOFU experiment (``--data tofu:<dir>:full``; the oracle on ``retain90``).

    Every token of ``question answer`` (or ``text``) is trained on, as for the built-in victim.
    """
    import time

    from genforget.lm.victim import train_causal_lm

    t0 = time.perf_counter()
    train_causal_lm(model, tokenizer, lambda rng: list(texts), vcfg, desc="train")
    seconds = time.perf_counter() - t0
    with atomic_dir(out, args.overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    print(f"trained on {len(texts)} examples of {args.data} in {seconds:.1f}s; saved to {out}")
    return 0
