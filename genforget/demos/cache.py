"""The demos' victims and oracles: trained once, then loaded (:mod:`genforget.train_cache`).

Every language-model demo trains a tiny Llama on its own texts (:func:`cached_lm`); each key
holds the SHA-256 of those texts, the model config and the tokenizer format, plus what else made
the model (:func:`lm_key`). The diffusion demos key their models the same way through
:func:`genforget.train_cache.train_or_load`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from genforget.lm.victim import TOKENIZER_FORMAT, VictimConfig
from genforget.train_cache import texts_sha256, train_or_load


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    """``records`` as a JSONL file at ``path`` (its folder made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def lm_key(texts: list[str], vcfg: VictimConfig, sep: str = "\n", **extra) -> dict:
    """The cache key of a tiny LM trained on ``texts`` with ``vcfg`` (``extra``: what else made it)."""
    return {
        "data_sha256": texts_sha256(texts, sep),
        "victim": dataclasses.asdict(vcfg),
        "tokenizer_format": TOKENIZER_FORMAT,
        **extra,
    }


def tiny_lm_trainer(
    texts: list[str], vcfg: VictimConfig, tok=None, vocab: list[str] | None = None, desc: str = ""
) -> Callable[[], tuple]:
    """Training of a tiny Llama on ``texts`` (every epoch all of them), with ``tok`` or a tokenizer
    trained on ``vocab`` (default: the texts), as :func:`cached_lm` wants it."""

    def train() -> tuple:
        from genforget.lm.victim import build_model, train_causal_lm, train_tokenizer

        t = tok or train_tokenizer(vocab if vocab is not None else texts, vcfg.vocab_size)
        model = build_model(vcfg, t)
        train_causal_lm(model, t, lambda rng: list(texts), vcfg, desc=desc)
        return (model, t), {}

    return train


def _save_lm(pair: tuple, out: Path) -> None:
    pair[0].save_pretrained(out)
    pair[1].save_pretrained(out)


def _load_lm(out: Path) -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)


def cached_lm(
    out: str | Path, key: dict, train: Callable[[], tuple], tag: str, desc: str, what: str
) -> tuple:
    """``(model, tokenizer, seconds)``: loaded from ``out`` when it was trained with ``key``, else
    ``train()`` (returning ``((model, tokenizer), info)``) and saved there. ``tag`` / ``desc`` /
    ``what`` make the progress line: ``[tag] desc: training on what`` or ``... cached in out``."""
    out = Path(out)

    def logged() -> tuple:
        print(f"[{tag}] {desc}: training on {what}")
        return train()

    (model, tok), info = train_or_load(out, key, logged, _save_lm, _load_lm)
    if info["cached"]:
        print(f"[{tag}] {desc}: cached in {out} (trained in {info['seconds']:.1f}s)")
    return model, tok, info["seconds"]


def corpus_lm_key(corpus, splits: tuple[str, ...], vcfg: VictimConfig) -> dict:
    """The cache key of :func:`cached_corpus_lm`: the corpus's documents and settings, the
    splits trained on and the model config (so a demo-sized and a large victim never collide)."""
    docs = [p.bio()["text"] for p in corpus.people] + [t.text for t in corpus.passages]
    return lm_key(docs, vcfg, splits=list(splits), corpus=corpus.meta, seed=corpus.seed)


def cached_corpus_lm(corpus, splits: tuple[str, ...], vcfg: VictimConfig, out: str | Path, tokenizer=None,
                     desc: str = "", tag: str = "demo") -> tuple:  # fmt: skip
    """``(model, tokenizer, seconds)`` of a tiny Llama trained on ``splits`` of a built-in people
    corpus (:func:`genforget.lm.victim.train_victim`: a tokenizer of the whole corpus unless
    given), keyed by the corpus's documents, its settings and the splits."""
    from genforget.lm.victim import train_victim

    key = corpus_lm_key(corpus, splits, vcfg)

    def train() -> tuple:
        model, tok, seconds = train_victim(corpus, splits, vcfg, tokenizer=tokenizer, desc=desc)
        return (model, tok), {"seconds": seconds}

    what = f"{'+'.join(splits)} ({vcfg.max_steps} steps)"
    return cached_lm(out, key, train, tag, desc, what)
