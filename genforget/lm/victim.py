"""Train the tiny "victim" LM that memorises the built-in corpus, and the retain-only oracle.

The same function trains both: the victim on forget + retain, the oracle on retain only (what a
full retrain after a deletion request would give). Run it as ``python recipes/train_victim.py``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from genforget.lm.data import Collator, tokenize_example
from genforget.lm.specials import special_rule
from genforget.loop import clipped_step

SPECIAL = {"pad_token": "<|pad|>", "bos_token": "<|bos|>", "eos_token": "<|eos|>"}
# Bumped when the saved tokenizer's behaviour changes, so demo caches keyed on it retrain.
# 2: the tokenizer itself adds BOS (a post-processor), which genforget follows.
TOKENIZER_FORMAT = 2


@dataclass
class VictimConfig:
    """Size and schedule of the tiny memorising Llama.

    The defaults memorise the 200-person demo corpus (phone, email, ... and 50 passages) on one
    CPU core in a few minutes.
    """

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    vocab_size: int = 1024
    max_steps: int = 600
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    max_length: int = 256
    seed: int = 0


# "demo": the `make demo` victim (459k parameters); "small": a 115k-parameter one that memorises
# the 20-person test corpus in about 10 s, for tests and quick runs; "large": 4.2M parameters
# (9x the demo's) on the same corpus, for how forgetting's trade-offs move with capacity
# (bench/robust.py --size large). 250 steps at the demo's lr 3e-3 memorised nothing (forget PII
# extraction 0.03, retain perplexity 2.63): hence the demo's 600 steps at a third of its rate;
# docs/robustness.md states what they reached.
VICTIM_PRESETS = {
    "demo": VictimConfig(),
    "small": VictimConfig(
        hidden_size=64,
        intermediate_size=128,
        vocab_size=512,
        max_steps=200,
        batch_size=16,
        learning_rate=5e-3,
        warmup_steps=10,
    ),
    "large": VictimConfig(
        hidden_size=256,
        num_hidden_layers=6,
        intermediate_size=512,
        max_steps=600,
        learning_rate=1e-3,
        warmup_steps=60,
    ),
}


def sized_config(
    hidden_size: int,
    num_hidden_layers: int,
    vocab_size: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
) -> VictimConfig:
    """A demo's victim from its few knobs: the MLP twice the width, warm-up a tenth of the steps
    (at most 30), 256-token documents."""
    return VictimConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        intermediate_size=2 * hidden_size,
        vocab_size=vocab_size,
        max_steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=min(30, steps // 10 + 1),
        max_length=256,
        seed=seed,
    )


def train_tokenizer(texts: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE with its own pad/bos/eos tokens; ``tokenizer(text)`` adds the BOS.

    ``add_prefix_space=True`` makes a word tokenise the same at the start of a prompt as in the
    middle of a sentence, so a probe starting with a name matches how the name was trained. The
    BOS is added by the tokenizer's post-processor, where genforget (and any other library)
    reads the convention from (:mod:`genforget.lm.specials`).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    bos = SPECIAL["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


def build_model(config: VictimConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A tiny LlamaForCausalLM sized by ``config`` for ``tokenizer``'s vocabulary."""
    torch.manual_seed(config.seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_length,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(cfg)


def train_causal_lm(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    make_epoch: Callable[[random.Random], list[str]],
    config: VictimConfig,
    desc: str = "train",
) -> float:
    """Plain next-token training on documents; ``make_epoch(rng)`` returns one epoch's texts
    (the PII corpus re-shuffles each bio's sentences there). Returns the final mean loss."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    collate = Collator(tokenizer)
    rule = special_rule(tokenizer)  # the BOS/EOS tokenizer(text) adds, read once
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        frac = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    queue: list[str] = []
    ema = None
    bar = tqdm(range(config.max_steps), desc=desc, leave=False, disable=None)  # None: off when not a TTY
    for _ in bar:
        while len(queue) < config.batch_size:
            docs = make_epoch(rng)
            rng.shuffle(docs)
            queue.extend(docs)
        docs, queue = queue[: config.batch_size], queue[config.batch_size :]
        feats = [
            tokenize_example({"text": d + tokenizer.eos_token}, tokenizer, config.max_length, rule=rule)
            for d in docs
        ]
        batch = collate(feats)
        loss = model(**batch).loss
        clipped_step(loss, model.parameters(), opt, sched)
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
    model.eval()
    return float(ema or 0.0)


def corpus_epoch(people: list, passages: list) -> Callable[[random.Random], list[str]]:
    """Epoch maker for the PII corpus: every bio with its sentences freshly shuffled, every passage.

    Without the shuffle, a fact is only ever seen after the same earlier sentences and a short
    probe ("<name>'s phone number is") cannot extract it.
    """

    def make(rng: random.Random) -> list[str]:
        return [p.bio(rng)["text"] for p in people] + [t.text for t in passages]

    return make


def train_victim(
    corpus,
    splits: tuple[str, ...] = ("forget", "retain"),
    config: VictimConfig | None = None,
    tokenizer: PreTrainedTokenizerFast | None = None,
    output_dir: str | Path | None = None,
    desc: str = "victim",
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, float]:
    """Train a tiny Llama on ``splits`` of the PII corpus; return ``(model, tokenizer, seconds)``.

    The tokenizer is trained on the whole corpus (holdout included) unless given, so victim and
    oracle share one vocabulary and their scores are comparable.
    """
    config = config or VictimConfig()
    t0 = time.perf_counter()
    if tokenizer is None:
        all_text = [p.bio()["text"] for p in corpus.people] + [t.text for t in corpus.passages]
        tokenizer = train_tokenizer(all_text, config.vocab_size)
    model = build_model(config, tokenizer)
    people, passages = corpus.train_documents(splits)
    train_causal_lm(model, tokenizer, corpus_epoch(people, passages), config, desc=desc)
    seconds = time.perf_counter() - t0
    if output_dir is not None:
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    return model, tokenizer, seconds
