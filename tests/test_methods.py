"""Losses against hand-computed values, and the grid over every registered method."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import genforget
from genforget.config import UnlearnConfig
from genforget.lm.trainer import unlearn_lm
from genforget.methods.registry import METHODS, get_method
from genforget.scores import Scores

LOGP = torch.tensor([-2.0, -6.0])
NLL = torch.tensor([0.5, 1.5])
REF = torch.tensor([-1.0, -3.0])
RETAIN = Scores(logp=torch.tensor([-4.0]), nll=torch.tensor([0.8]))


def _loss(name: str, retain: Scores | None = None, **cfg) -> float:
    method = get_method(name)(UnlearnConfig(method=name, **cfg))
    return method.loss(Scores(logp=LOGP, nll=NLL, ref_logp=REF), retain).item()


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_grad_ascent_is_negative_mean_nll_and_ignores_retain():
    assert _loss("grad_ascent") == pytest.approx(-1.0)
    assert _loss("grad_ascent", RETAIN) == pytest.approx(-1.0)


def test_grad_diff_adds_weighted_retain_nll():
    assert _loss("grad_diff", RETAIN, retain_weight=2.0) == pytest.approx(-1.0 + 2.0 * 0.8)


def test_npo_matches_hand_computation():
    beta = 0.5
    # log-ratios: -1 and -3 -> -(2/beta) * mean(logsigmoid(-beta * ratio))
    expected = -(2 / beta) * (_logsig(0.5) + _logsig(1.5)) / 2
    assert _loss("npo", beta=beta) == pytest.approx(expected, rel=1e-6)
    assert _loss("npo", RETAIN, beta=beta, retain_weight=1.0) == pytest.approx(expected + 0.8, rel=1e-6)


def test_npo_is_bounded_where_grad_ascent_is_not():
    far = Scores(logp=torch.tensor([-1e4]), nll=torch.tensor([1e3]), ref_logp=torch.tensor([0.0]))
    cfg = UnlearnConfig(method="npo", beta=0.1)
    assert 0 <= get_method("npo")(cfg).loss(far).item() < 1e-3
    assert get_method("grad_ascent")(cfg).loss(far).item() == pytest.approx(-1e3)


def test_simnpo_matches_hand_computation():
    beta, gamma = 2.0, 0.5
    # -(2/beta) * mean(logsigmoid(beta * nll - gamma)); nll = -logp/|y|
    expected = -(2 / beta) * (_logsig(2 * 0.5 - 0.5) + _logsig(2 * 1.5 - 0.5)) / 2
    assert _loss("simnpo", beta=beta, gamma=gamma) == pytest.approx(expected, rel=1e-6)


def test_npo_needs_reference():
    with pytest.raises(ValueError, match="reference"):
        get_method("npo")(UnlearnConfig()).loss(Scores(logp=LOGP, nll=NLL))


def test_unknown_method_says_did_you_mean():
    with pytest.raises(ValueError, match="Did you mean 'simnpo'"):
        UnlearnConfig(method="simnpoo")
    with pytest.raises(ValueError, match="unknown field 'lerning_rate'.*Did you mean 'learning_rate'"):
        genforget.unlearn(None, None, [{"text": "x"}], lerning_rate=1.0)


def test_a_new_method_is_one_register_line():
    @genforget.register("_test_double_ga")
    class DoubleGA(genforget.methods.base.Method):
        def forget_loss(self, forget):
            return -2 * forget.nll.mean()

    try:
        assert get_method("_test_double_ga") is DoubleGA
        assert DoubleGA(UnlearnConfig()).loss(Scores(logp=LOGP, nll=NLL)).item() == pytest.approx(-2.0)
    finally:
        del METHODS["_test_double_ga"]


# "chosen": the preferred answer `dpo` reads (every other method ignores the key).
FORGET = [
    {
        "prompt": "Alice's phone number is",
        "target": " 555-0100.",
        "chosen": {"prompt": "Alice's phone number is", "target": " not listed."},
    },
    {"text": "Bob lives at 1 Main Street.", "chosen": "Bob lives somewhere."},
]
RETAIN_EX = [{"text": "Carol works for Acme."}]
LM_METHODS = sorted(n for n, cls in METHODS.items() if "lm" in cls.modalities)


@pytest.mark.parametrize("name", LM_METHODS)
def test_every_method_changes_all_trainable_weights(name, tiny_lm, tokenizer):
    before = copy.deepcopy(tiny_lm.state_dict())
    cfg = UnlearnConfig(method=name, max_steps=2, learning_rate=1e-2, batch_size=2, retain_batch_size=1)
    # "Trainable": every weight, or only the modules a method restricts itself to (RMU); then
    # every other weight must stay bit-identical.
    modules = get_method(name)(cfg).trainable_modules(tiny_lm)
    keep = tuple(m + "." for m in modules) if modules is not None else ("",)
    model = unlearn_lm(tiny_lm, tokenizer, FORGET, RETAIN_EX, cfg)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    unchanged = [k for k in before if k not in changed and k.startswith(keep)]
    assert not unchanged, f"{name}: parameters not updated: {unchanged[:5]}"
    assert all(k.startswith(keep) for k in changed), f"{name}: frozen parameters changed"
    assert all(p.requires_grad for p in model.parameters()), "requires_grad flags not restored"


@pytest.mark.parametrize("name", LM_METHODS)
def test_lora_trains_adapter_and_keeps_base_bit_identical(name, tiny_lm, tokenizer):
    base = [(p, p.detach().clone()) for p in tiny_lm.parameters()]  # peft wraps these same tensors
    cfg = UnlearnConfig(method=name, max_steps=2, learning_rate=1e-2, use_lora=True, lora_r=4)
    model = unlearn_lm(tiny_lm, tokenizer, FORGET, RETAIN_EX, cfg)
    state = model.state_dict()
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero and must have moved"
    assert all(not p.requires_grad for p, _ in base)
    assert all(torch.equal(p, snapshot) for p, snapshot in base), "a base weight changed"
