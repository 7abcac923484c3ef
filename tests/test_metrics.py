"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from genforget.evaluation.metrics.extraction import pii_hits, verbatim_hits
from genforget.evaluation.metrics.likelihood import mia_auc, min_k_score, perplexity


def test_perplexity_is_exp_of_mean_example_nll():
    lp = [torch.tensor([-1.0, -3.0]), torch.tensor([-0.5])]  # example NLLs 2.0 and 0.5
    assert perplexity(lp) == pytest.approx(math.exp(1.25))


def test_min_k_takes_lowest_fraction():
    lp = torch.tensor([-0.1, -5.0, -2.0, -0.2, -1.0])
    assert min_k_score(lp, k=0.4) == pytest.approx((5.0 + 2.0) / 2)  # 2 lowest of 5
    assert min_k_score(torch.tensor([-3.0]), k=0.4) == pytest.approx(3.0)  # at least one token


def test_mia_auc_orientation():
    assert mia_auc([0.1, 0.2], [1.0, 2.0]) == 1.0  # members have lower loss: recognised
    assert mia_auc([1.0, 2.0], [0.1, 0.2]) == 0.0
    assert mia_auc([1.0, 0.1], [1.0, 0.1]) == 0.5


def test_hit_rules():
    assert pii_hits([" is 555-1234. Then", " unknown"], ["555-1234", "a@b.c"]) == [True, False]
    assert verbatim_hits(["  red  fox\njumps over", " red fox"], ["red fox jumps", "red fox jumps"]) == [
        True,
        False,
    ]


def test_rates_by_field():
    from genforget.evaluation.metrics.extraction import rates_by_field

    probes = [{"field": "email"}, {"field": "email"}, {"field": "phone"}]
    assert rates_by_field([True, False, True], probes) == {"all": 2 / 3, "email": 0.5, "phone": 1.0}


def test_any_of_k_sampling_returns_k_per_prompt(tiny_lm, tokenizer):
    from genforget.evaluation.metrics.extraction import generate

    out = generate(tiny_lm, tokenizer, ["Ann", "Bo lives"], max_new_tokens=3, num_samples=4)
    assert len(out) == 2 and all(len(s) == 4 for s in out)
    greedy = generate(tiny_lm, tokenizer, ["Ann", "Bo lives"], max_new_tokens=3)
    assert greedy == generate(tiny_lm, tokenizer, ["Ann", "Bo lives"], max_new_tokens=3)  # deterministic
