"""Shared fixtures: a 20-person corpus, a tiny memorising victim (trained once per session), and
a random tiny Llama for unit tests. No downloads: every model and tokenizer is built here."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from genforget.data.pii import build_pii_corpus  # noqa: E402
from genforget.lm.victim import VICTIM_PRESETS, VictimConfig, build_model, train_tokenizer, train_victim  # noqa: E402

torch.set_num_threads(2)

SMALL_VICTIM = VICTIM_PRESETS["small"]


def tiny_demo_args(cls, tmp, **fields):
    """A language-model demo's args at test size: run dir and training data under ``tmp``, a
    64-wide victim that learns its corpus in seconds; ``fields``: the demo's own settings."""
    sizes = {"hidden_size": 64, "train_batch_size": 16, "train_learning_rate": 5e-3}
    return cls(output_dir=str(tmp / "run"), data_path=str(tmp / "data" / "train.jsonl"), **sizes | fields)


def tensorboard_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files under ``log_dir`` as read back by TensorBoard
    itself (not by our writer), each tag's points sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for run in {p.parent for p in log_dir.rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(run))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def corpus():
    """20 trained people (4 forget, 16 retain) + 4 holdout; 10 passages (2 forget)."""
    return build_pii_corpus(n_people=20, n_passages=10, forget_frac=0.2, seed=0)


@pytest.fixture(scope="session")
def victim_dir(corpus, tmp_path_factory):
    """A saved tiny victim that has memorised the 20-person corpus (about 10 s to train)."""
    out = tmp_path_factory.mktemp("victim")
    train_victim(corpus, config=SMALL_VICTIM, output_dir=out)
    return out


@pytest.fixture
def victim(victim_dir):
    """A fresh copy of the memorised victim and its tokenizer, per test."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(victim_dir), AutoTokenizer.from_pretrained(victim_dir)


@pytest.fixture(scope="session")
def tokenizer(corpus):
    return train_tokenizer([p.bio()["text"] for p in corpus.people] + [t.text for t in corpus.passages], 300)


@pytest.fixture
def tiny_lm(tokenizer):
    """A random 2-layer Llama (untrained) for fast unit tests."""
    return build_model(VictimConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4), tokenizer)


def _oracle(corpus, victim_dir, out, seed: int):
    import dataclasses

    from transformers import AutoTokenizer

    cfg = dataclasses.replace(SMALL_VICTIM, seed=seed)
    train_victim(
        corpus, ("retain",), cfg, tokenizer=AutoTokenizer.from_pretrained(victim_dir), output_dir=out
    )
    return out


@pytest.fixture(scope="session")
def oracle_dir(corpus, victim_dir, tmp_path_factory):
    """The retain-only retrain of the tiny victim (same tokenizer)."""
    return _oracle(corpus, victim_dir, tmp_path_factory.mktemp("oracle"), seed=0)


@pytest.fixture(scope="session")
def oracle2_dir(corpus, victim_dir, tmp_path_factory):
    """A second retain-only retrain with another seed: what 'indistinguishable' looks like."""
    return _oracle(corpus, victim_dir, tmp_path_factory.mktemp("oracle2"), seed=1)


def unlearn_corpus(model, tok, corpus, calibrated: bool = False, **config):
    """Unlearn the corpus's forget split (retain texts as the retain term) through the public API."""
    import genforget

    return genforget.unlearn(
        model,
        tok,
        corpus.unlearn_examples("forget"),
        corpus.full_text_examples("retain"),
        calibration=corpus.calibration_examples() if calibrated else False,
        **config,
    )


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread, restoring the count afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
