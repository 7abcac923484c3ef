"""Divergence guard (on by default) and determinism (same config + seed -> identical weights)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import unlearn_corpus

import genforget
from genforget.evaluation.split import corpus_split

AGGRESSIVE = {"method": "grad_ascent", "learning_rate": 1e-2, "max_steps": 20, "divergence_every": 2}


def _retain_extraction(model, tok, corpus) -> float:
    m = genforget.evaluate(model, tok, corpus_split(corpus, "forget"), corpus_split(corpus, "retain"))
    return m["retain_pii_extraction"]


@pytest.mark.parametrize("guard", [True, False])
def test_guard_stops_gradient_ascent_before_collapse(victim, corpus, guard):
    model, tok = victim
    res = genforget.unlearn(
        model,
        tok,
        corpus.unlearn_examples("forget"),
        corpus.unlearn_examples("retain"),  # targets: other people's PII, the same kind as the forget set's
        return_history=True,
        divergence_guard=guard,
        calibration=False,  # the guard alone (the API's own collateral watch is tested in test_twins)
        **AGGRESSIVE,
    )
    ext = _retain_extraction(res.model, tok, corpus)
    tripped = [r for r in res.history if r.get("diverged")]
    if guard:
        assert (
            len(tripped) == 1 and tripped[0]["restored_step"] < tripped[0]["step"] < AGGRESSIVE["max_steps"]
        )
        rise = max(tripped[0][k] - tripped[0][f"{k}_start"] for k in ("retain_nll", "retain_target_nll"))
        assert rise > math.log(10.0)  # perplexity ratio past the default bound
        assert ext >= 0.8
    else:
        assert tripped == [] and ext < 0.5


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("lora", [False, True])
def test_same_config_and_seed_give_identical_weights(victim_dir, corpus, lora):
    def run(seed: int) -> dict[str, torch.Tensor]:
        model, tok = genforget.load_model(victim_dir)
        torch.manual_seed(1234 + seed)  # the run must not depend on the global RNG state it starts in
        # Uncalibrated, so every step trains (a stop could end both runs at step 0); LoRA dropout is
        # a random op inside the step: seeded too.
        lora_kw = {"use_lora": lora, "lora_dropout": 0.1 if lora else 0.0}
        out = unlearn_corpus(
            model, tok, corpus, method="npo", max_steps=4, batch_size=2, seed=seed, **lora_kw
        )
        return _state(out)

    a, b, c = run(0), run(0), run(1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the seed matters, so the check can fail
