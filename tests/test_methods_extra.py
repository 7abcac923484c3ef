"""RMU, IdK-NLL, IdK-DPO and WHP: losses against hand computation, and their hooks' behaviour."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from genforget.config import UnlearnConfig
from genforget.lm.data import IGNORE, Collator, tokenize_example
from genforget.lm.method_hooks import MethodRun, _layer_output, decoder_layers, prepare_method
from genforget.lm.trainer import unlearn_lm
from genforget.methods.refusals import REFUSALS, refusal_pairs, split_prompt
from genforget.methods.registry import get_method
from genforget.methods.whp import generic_logits
from genforget.scores import Scores

FORGET = [
    {"prompt": "Alice's phone number is", "target": " 555-0100."},
    {"text": "Bob lives at 1 Main Street and walks to work every day."},
]
RETAIN_EX = [{"text": "Carol works for Acme."}]


def _method(name: str, **cfg):
    return get_method(name)(UnlearnConfig(method=name, **cfg))


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_rmu_loss_matches_hand_computation():
    m = _method("rmu", rmu_alpha=10.0)
    m.set_control(torch.tensor([3.0, 4.0]), c=10.0)  # u = (0.6, 0.8) -> c*u = (6, 8)
    forget = Scores(logp=torch.zeros(1), nll=torch.zeros(1), hidden=torch.tensor([[6.0, 8.0], [4.0, 8.0]]))
    # forget: squared errors 0, 0, 4, 0 -> mean 1
    assert m.loss(forget).item() == pytest.approx(1.0)
    retain = Scores(
        logp=torch.zeros(1),
        nll=torch.zeros(1),
        hidden=torch.tensor([[1.0, 2.0]]),
        ref_hidden=torch.tensor([[1.0, 0.0]]),
    )
    # retain: squared errors 0, 4 -> mean 2, times alpha 10
    assert m.loss(forget, retain).item() == pytest.approx(1.0 + 20.0)
    with pytest.raises(ValueError, match="ref_hidden"):
        m.loss(forget, Scores(logp=retain.logp, nll=retain.nll, hidden=retain.hidden))


def test_idk_nll_is_refusal_nll_plus_retain():
    m = _method("idk_nll", retain_weight=2.0)
    loss = m.loss(
        Scores(logp=torch.tensor([-1.0, -3.0]), nll=torch.tensor([0.5, 1.5])),
        Scores(logp=torch.tensor([-4.0]), nll=torch.tensor([0.8])),
    )
    assert loss.item() == pytest.approx(1.0 + 2.0 * 0.8)


def test_idk_dpo_matches_hand_computation():
    m = _method("idk_dpo", beta=0.1, retain_weight=1.0)
    chosen = Scores(logp=torch.tensor([-10.0, -4.0]), nll=torch.ones(2), ref_logp=torch.tensor([-12.0, -4.0]))
    rejected = Scores(
        logp=torch.tensor([-5.0, -8.0]), nll=torch.ones(2), ref_logp=torch.tensor([-3.0, -6.0]), chosen=chosen
    )
    # margins: (2 - (-2)) = 4 and (0 - (-2)) = 2 -> -mean(logsig(0.4), logsig(0.2))
    expected = -(_logsig(0.4) + _logsig(0.2)) / 2
    assert m.loss(rejected).item() == pytest.approx(expected, rel=1e-6)
    retain = Scores(logp=torch.tensor([-1.0]), nll=torch.tensor([0.3]))
    assert m.loss(rejected, retain).item() == pytest.approx(expected + 0.3, rel=1e-6)
    with pytest.raises(ValueError, match="reference"):
        m.loss(Scores(logp=rejected.logp, nll=rejected.nll, chosen=chosen))


def test_wga_matches_hand_computation():
    m = _method("wga", wga_beta=2.0, retain_weight=0.5)
    # two examples, tokens log p: (log .5, log .25 | pad) and (log .8 | pad, pad)
    logp = torch.log(torch.tensor([[0.5, 0.25, 1.0], [0.8, 1.0, 1.0]]))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    logp = logp * mask
    forget = Scores(logp=logp.sum(-1), nll=torch.ones(2), token_logp=logp, token_mask=mask)
    # -mean over 3 target tokens of p^2 * nll
    expected = -(0.25 * math.log(2) + 0.0625 * math.log(4) + 0.64 * -math.log(0.8)) / 3
    assert m.loss(forget).item() == pytest.approx(expected, rel=1e-6)
    retain = Scores(logp=torch.zeros(1), nll=torch.tensor([0.4]))
    assert m.loss(forget, retain).item() == pytest.approx(expected + 0.2, rel=1e-6)
    # the weight is a constant: the gradient is p^beta times plain ascent's
    logp.requires_grad_(True)
    get_method("wga")(UnlearnConfig(method="wga", wga_beta=2.0)).forget_loss(
        Scores(logp=logp.sum(-1), nll=torch.ones(2), token_logp=logp, token_mask=mask)
    ).backward()
    assert logp.grad[0, 0].item() == pytest.approx(0.25 / 3)


def test_whp_generic_logits_formula():
    base = torch.tensor([1.0, 2.0, 3.0])
    reinforced = torch.tensor([3.0, 2.0, 0.0])
    # ReLU(reinf - base) = (2, 0, 0): only the token the reinforced model likes more is pushed down
    assert generic_logits(base, reinforced, 2.0).tolist() == [-3.0, 2.0, 3.0]


def test_refusals_are_many_distinct_and_replace_only_the_answer():
    assert len(set(REFUSALS)) >= 50
    assert split_prompt(FORGET[0]) == ("Alice's phone number is", "555-0100.")
    prompt, answer = split_prompt(FORGET[1])
    assert prompt + " " + answer == FORGET[1]["text"] and len(prompt.split()) == 6
    answered, refused = refusal_pairs(FORGET, seed=0)
    # the prompt+target example is kept as it is; the plain text is cut where its refusal starts
    assert answered[0] == {"text": "Alice's phone number is 555-0100.", "spans": [(23, 33)]}
    assert answered[1] == {"prompt": prompt, "target": answer}
    assert [r["prompt"] for r in refused] == ["Alice's phone number is", prompt]
    assert all(r["target"] in REFUSALS for r in refused)
    assert refusal_pairs(FORGET, seed=0) == (answered, refused)
    bio = {"text": "Dana Lee was born in Oslo.", "spans": [(0, 8), (21, 25)]}
    (kept,), (refusal,) = refusal_pairs([bio])
    assert kept == bio and refusal["prompt"] == ""  # a span opens the text: nothing before it


def _prepare(name, model, tokenizer, **cfg):
    config = UnlearnConfig(method=name, **cfg)
    method = get_method(name)(config)
    collate = Collator(tokenizer.pad_token_id)
    feats = [dict(tokenize_example(ex, tokenizer), idx=i) for i, ex in enumerate(FORGET)]
    retain = [dict(tokenize_example(ex, tokenizer), idx=i) for i, ex in enumerate(RETAIN_EX)]
    out = prepare_method(
        method, model, tokenizer, FORGET, feats, retain, config, collate, torch.device("cpu")
    )
    return method, feats, out


def test_rmu_prepare_layer_control_and_restriction(tiny_lm, tokenizer):
    method, _, (model, config, _, run) = _prepare("rmu", tiny_lm, tokenizer)
    # 2 layers: round(7/32 * 2) = 0, raised to 1; the down_proj of layers max(0, 1-2)..1 train
    assert run.info["rmu_layer"] == 1
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ]
    # auto c: 5x the mean frozen activation norm on forget tokens; control = c * unit vector
    assert method.control.norm().item() == pytest.approx(run.info["rmu_c"], rel=1e-5)
    assert (method.control >= 0).all()
    run.close()
    assert all(p.requires_grad for p in model.parameters())
    _, _, (_, lora_cfg, _, run) = _prepare("rmu", tiny_lm, tokenizer, use_lora=True)
    assert lora_cfg.lora_target_modules == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    with pytest.raises(ValueError, match="outside"):
        _method("rmu", rmu_layer=2).hidden_layer(2)
    run.close()


def test_rmu_frozen_retain_activations_without_a_model_copy(tiny_lm, tokenizer):
    """Full fine-tuning: the swapped-in original weights give exactly the frozen model's output."""
    frozen_model = copy.deepcopy(tiny_lm)
    cfg = UnlearnConfig(method="rmu", max_steps=3, learning_rate=5e-2, batch_size=2, retain_batch_size=1)
    collate = Collator(tokenizer.pad_token_id)
    batch = collate([tokenize_example(RETAIN_EX[0], tokenizer)])
    layer_of = lambda m: decoder_layers(m)[1][1]  # noqa: E731
    expected = _layer_output(frozen_model, layer_of(frozen_model), batch)
    method, _, (model, _, _, run) = _prepare("rmu", tiny_lm, tokenizer)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.add_(1.0)  # as if trained
    assert not torch.allclose(_layer_output(model, layer_of(model), batch), expected)
    run.raw = model
    assert torch.equal(run._frozen_hidden(batch), expected)
    run.close()
    trained = unlearn_lm(frozen_model, tokenizer, FORGET, RETAIN_EX, cfg)
    assert trained is frozen_model


def test_idk_dpo_chosen_scores_and_cached_reference(tiny_lm, tokenizer):
    _, feats, (model, _, forget_feats, run) = _prepare("idk_dpo", tiny_lm, tokenizer)
    assert isinstance(run, MethodRun) and len(run.chosen_feats) == len(forget_feats) == 2
    # the pair shares the prompt tokens, differs in the answer; the reference cache is per refusal
    for f, c in zip(forget_feats, run.chosen_feats, strict=True):
        n_prompt = next(i for i, lab in enumerate(c["labels"]) if lab != IGNORE)
        assert f["input_ids"][:n_prompt] == c["input_ids"][:n_prompt]
    assert run.chosen_ref.shape == (2,) and (run.chosen_ref < 0).all()
    assert forget_feats[0] == feats[0] | {"idx": 0}  # a prompt+target example is already split


def test_whp_relabels_targets_and_leaves_the_base_untouched(tiny_lm, tokenizer):
    before = copy.deepcopy(tiny_lm.state_dict())
    _, feats, (model, _, new, run) = _prepare("whp", tiny_lm, tokenizer, whp_reinforce_steps=5, whp_alpha=5.0)
    assert model is tiny_lm and not hasattr(model, "peft_config")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    for old, f in zip(feats, new, strict=True):
        assert f["input_ids"] == old["input_ids"]
        assert [lab == IGNORE for lab in f["labels"]] == [lab == IGNORE for lab in old["labels"]]
    assert run.info["whp_relabelled_tokens"] > 0


def test_whp_term_replacement_hook(tokenizer):
    from genforget.methods.whp import WHP

    def one_token(word: str) -> bool:
        return len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1

    words = sorted(
        t[1:]
        for t in tokenizer.get_vocab()
        if t.startswith("\u0120") and t[1:].isalpha() and one_token(t[1:])
    )
    term, generic = words[0], words[1]

    class Named(WHP):
        anchor_terms = {term: generic, "Alice": "Al"}  # the second pair tokenises to unequal lengths

    feat = tokenize_example({"text": f"{term} met Alice."}, tokenizer)
    out = Named(UnlearnConfig(method="whp")).replace_terms(feat, tokenizer)
    gen_id = tokenizer(" " + generic, add_special_tokens=False)["input_ids"][0]
    assert out["labels"][1] == gen_id != feat["labels"][1]  # position 0 is BOS
    assert out["labels"][2:] == feat["labels"][2:]


def _loss_curve(model, tokenizer, method: str, **cfg) -> list[float]:
    """Per-step losses of a seeded 3-step ``method`` run on a copy of ``model``: two settings
    that must not change the maths (checkpointing, a cached reference) give the same curve."""
    torch.manual_seed(0)
    config = UnlearnConfig(method=method, max_steps=3, learning_rate=1e-2, batch_size=2, **cfg)
    history: list[dict] = []
    unlearn_lm(copy.deepcopy(model), tokenizer, FORGET, RETAIN_EX, config, history=history)
    return [h["loss"] for h in history]


@pytest.mark.parametrize("use_lora", [False, True])
def test_rmu_same_losses_with_gradient_checkpointing(tiny_lm, tokenizer, use_lora):
    """Checkpointing re-runs the hooked layer in backward; the captured activations must still be
    this step's forget and retain ones, so the loss curve is the same."""
    curves = [
        _loss_curve(tiny_lm, tokenizer, "rmu", use_lora=use_lora, gradient_checkpointing=ckpt)
        for ckpt in (False, True)
    ]
    assert curves[0] == pytest.approx(curves[1], rel=1e-4)
    assert curves[0][-1] < curves[0][0]


def test_idk_dpo_cached_reference_trains_like_a_copied_one(tiny_lm, tokenizer):
    """The refusals' cached reference log-probs give the same run as the naive deep copy."""
    curves = [
        _loss_curve(tiny_lm, tokenizer, "idk_dpo", reference=reference, retain_weight=0.0)
        for reference in ("auto", "copy")
    ]
    assert curves[0] == pytest.approx(curves[1], rel=1e-5)
    # at step 0 the policy is the reference: margin 0, loss = -log sigmoid(0) = log 2; then it falls
    assert curves[0][0] == pytest.approx(math.log(2), rel=1e-5)
    assert curves[0][-1] < math.log(2)


def test_frozen_activations_when_nothing_is_restricted(tiny_lm, tokenizer, monkeypatch):
    """A needs_hidden method that trains every weight still gets the *frozen* activations."""
    from genforget.methods.rmu import RMU

    monkeypatch.setattr(RMU, "trainable_modules", lambda self, model: None)
    collate = Collator(tokenizer.pad_token_id)
    batch = collate([tokenize_example(RETAIN_EX[0], tokenizer)])
    layer = decoder_layers(tiny_lm)[1][1]
    expected = _layer_output(tiny_lm, layer, batch)
    _, _, (model, _, _, run) = _prepare("rmu", tiny_lm, tokenizer)
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    run.raw = model
    assert torch.equal(run._frozen_hidden(batch), expected)
    run.close()
