"""The architecture grid: every LM method x every model family x full / LoRA, peft-style.

One tester over tiny random-init configs (genforget.lm.families: width 16, 2 blocks, no dropout,
the session's 300-token tokenizer) checks that each combination runs, that what should train
changed and nothing else did (LoRA: the base bit-identical, every adapter moved), and that the
method's loss went down from its first step to its last (newton, one closed-form step: the
forget NLL went up). The one combination that cannot work, RMU's LoRA on Mamba's out_proj
(peft refuses LoRA there), is tested as a refusal.
"""

from __future__ import annotations

import copy

import pytest
import torch
from accelerate import Accelerator

from genforget.adapters import resolve_lora_targets
from genforget.config import UnlearnConfig, settings_for
from genforget.lm.arch import decoder_layers
from genforget.lm.data import Collator, tokenize_all
from genforget.lm.families import FAMILIES, tiny_model
from genforget.lm.scoring import sequence_scores
from genforget.lm.trainer import unlearn_lm
from genforget.methods.registry import METHODS

FORGET = [
    {"prompt": "Alice's phone number is", "target": " 555-0100."},
    {"text": "Bob lives at 1 Main Street."},
]
RETAIN = [{"text": "Carol works for Acme."}]
# dpo reads each forget example's preferred answer from the data (kind: association requests
# build such pairs); every other method ignores the key.
CHOSEN = [{"prompt": "Alice's phone number is", "target": " private."}, "Bob lives in a town."]
LM_METHODS = sorted(n for n, cls in METHODS.items() if "lm" in cls.modalities)
REFUSED = {("mamba", "rmu", "lora"): "peft refuses"}
# In `make test`: every family with npo (full and LoRA: targets, blocks) and rmu (its layer and
# weights found per architecture), and every method on three unlike architectures (Llama-style
# projections, GPT-2's Conv1D and fused c_attn, Mamba's mixer). The whole 18 x 11 x 2 grid, about
# 10 CPU-minutes, runs with `make test-slow`.
CORE_FAMILIES = ("llama", "gpt2", "mamba")


def _grid() -> list:
    cases = []
    for family in FAMILIES:
        for method in LM_METHODS:
            for mode in ("full", "lora"):
                core = family in CORE_FAMILIES or method == "npo" or (method == "rmu" and mode == "full")
                marks = () if core else (pytest.mark.slow,)
                cases.append(pytest.param(family, method, mode, marks=marks, id=f"{family}-{method}-{mode}"))
    return cases


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def _forget_grad(model, tokenizer) -> dict[str, torch.Tensor]:
    """Gradient of the mean forget NLL (newton's forget loss) for every parameter, or no entry."""
    batch = Collator(tokenizer.pad_token_id)(tokenize_all(FORGET, tokenizer, 64))
    batch.pop("idx")
    model.eval()
    loss = sequence_scores(model, batch).nll.mean()
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    model.zero_grad(set_to_none=True)
    return {n: g for n, g in zip(params, grads, strict=True) if g is not None}


@pytest.mark.filterwarnings("ignore::genforget.OutcomeWarning")  # 3 steps on a random model
@pytest.mark.parametrize("family, method, mode", _grid())
def test_method_on_family(family, method, mode, tokenizer, accelerator):
    model = tiny_model(family, tokenizer)
    # one settings mapping for every method; each takes its own (settings_for)
    settings = dict(
        method=method,
        max_steps=3,
        # RMU trains a few output projections against an alpha=100 retain term: a first Adam step
        # of 1e-2 on the random init's 0.02-scale weights overshoots it on GPT-2, Phi, OPT, Falcon,
        # Gemma-2/3 (loss up at step 1, not back below step 0 by step 2); at 1e-3 it falls on all.
        learning_rate=1e-3 if method == "rmu" else 1e-2,
        batch_size=2,  # the whole forget set each step: the loss at steps 0 and 2 compare like with like
        retain_batch_size=1,
        use_lora=mode == "lora",
        lora_r=4,
        whp_reinforce_steps=2,
        newton_cg_iters=2,
    )
    cfg = UnlearnConfig(**settings_for(method, settings))
    if (family, method, mode) in REFUSED:
        with pytest.raises(ValueError, match=REFUSED[family, method, mode]):
            unlearn_lm(model, tokenizer, FORGET, RETAIN, cfg, accelerator)
        return
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    tensors = dict(model.named_parameters())
    grad_before = _forget_grad(model, tokenizer) if method == "newton" else None
    history: list[dict] = []
    outcome: dict = {}
    forget = (
        [{**ex, "chosen": c} for ex, c in zip(FORGET, CHOSEN, strict=True)] if method == "dpo" else FORGET
    )
    out = unlearn_lm(model, tokenizer, forget, RETAIN, cfg, accelerator, history=history, outcome=outcome)

    if mode == "lora":
        assert all(torch.equal(tensors[n], base[n]) for n in base), "a base weight changed under LoRA"
        lora_b = {n: p for n, p in out.named_parameters() if "lora_B" in n}
        assert lora_b and all(p.abs().sum() > 0 for p in lora_b.values()), "an adapter did not move"
        assert outcome["lora_targets"]["modules"] or outcome["lora_targets"]["parameters"]
    else:
        changed = {n for n in base if not torch.equal(tensors[n], base[n])}
        if method == "rmu":
            # Only the MLP output projections of the steered layer and the two before it.
            assert changed and all(
                any(k in n for k in ("down_proj", "c_proj", "fc2", "dense_4h_to_h", "out_proj"))
                for n in changed
            ), sorted(changed)
        else:
            # Every weight matrix of the decoder blocks moved (1-D biases and norms may have no gradient).
            blocks = tuple(name + "." for name, _ in decoder_layers(model))
            matrices = {n for n, p in base.items() if p.dim() >= 2 and n.startswith(blocks)}
            assert matrices and matrices <= changed, sorted(matrices - changed)[:5]
        assert all(p.requires_grad for p in model.parameters()), "requires_grad flags not restored"

    if method == "newton":
        # One Newton step from a random (not converged) model: the forget NLL must rise to first
        # order, g_F . (theta_1 - theta_0) > 0, which (H + lambda I)^-1 g_F guarantees; the full
        # step's effect depends on curvature far from an optimum.
        merged = copy.deepcopy(out).merge_and_unload() if mode == "lora" else out  # LoRA: B A added in
        step = {n: p.detach() - base[n] for n, p in merged.named_parameters() if n in base}
        assert sum((grad_before[n] * step[n]).sum() for n in grad_before).item() > 0
    else:
        losses = [r["loss"] for r in history if "loss" in r]
        assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert outcome["status"] in ("forgotten", "partial", "unchanged") and outcome["reason"]


# What "every linear layer of the decoder blocks" means per family (block-relative names), and
# what is left out with why: the names a user would otherwise have to look up.
EXPECTED_TARGETS = {
    "gpt2": (["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], [], []),
    "phi3": (["mlp.down_proj", "mlp.gate_up_proj", "self_attn.o_proj", "self_attn.qkv_proj"], [], []),
    "falcon": (
        ["mlp.dense_4h_to_h", "mlp.dense_h_to_4h", "self_attention.dense", "self_attention.query_key_value"],
        [],
        [],
    ),
    "opt": (
        ["fc1", "fc2", "self_attn.k_proj", "self_attn.out_proj", "self_attn.q_proj", "self_attn.v_proj"],
        [],
        [],
    ),
    "mixtral": (
        ["self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"],
        ["mlp.experts.down_proj", "mlp.experts.gate_up_proj"],
        [],
    ),
    "mamba": (
        ["mixer.in_proj", "mixer.x_proj"],
        [],
        ["mixer.dt_proj (its forward never runs", "mixer.out_proj (peft refuses"],
    ),
}


@pytest.mark.parametrize("family", sorted(EXPECTED_TARGETS))
def test_lora_targets_cover_every_linear_layer_of_the_blocks(family, tokenizer):
    modules, parameters, skipped = EXPECTED_TARGETS[family]
    targets = resolve_lora_targets(tiny_model(family, tokenizer))
    assert (targets.rule, targets.modules, targets.parameters) == ("auto", modules, parameters)
    assert len(targets.skipped) == len(skipped)
    assert all(s.startswith(want) for s, want in zip(targets.skipped, skipped, strict=True))


@pytest.mark.filterwarnings("ignore::genforget.OutcomeWarning")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_undo_saliency_mask_on_family(family, tokenizer, accelerator):
    # UNDO with a saliency mask: only the chosen half of the entries is noised, on every family
    # (its noise is a fresh instance of the model's own class; its mask ranks tensors by name).
    from genforget.lm.remedies.undo import saliency_masks

    model = tiny_model(family, tokenizer)
    collate = Collator(tokenizer.pad_token_id)
    feats = tokenize_all(FORGET, tokenizer, 64)
    masks = saliency_masks(model, feats, tokenize_all(RETAIN, tokenizer, 64), collate, 0.5)
    n = sum(p.numel() for p in model.parameters())
    assert masks.keys() == {k for k, p in model.named_parameters() if p.requires_grad}
    assert sum(int(m.sum()) for m in masks.values()) == pytest.approx(n / 2, abs=n * 0.01)
    cfg = UnlearnConfig(max_steps=1, batch_size=2, undo_alpha=0.5, undo_mask_ratio=0.5, undo_steps=1)
    out = unlearn_lm(model, tokenizer, FORGET, RETAIN, cfg, accelerator)
    assert out is not model and any(
        not torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters(), strict=True)
    )
