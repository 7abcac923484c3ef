"""UnlearningTrainer: genforget's method losses inside transformers.Trainer, step for step."""

from __future__ import annotations

import copy

import pytest
from huggingface_hub import ModelCard
from peft import PeftModel
from transformers import TrainingArguments

from genforget.config import UnlearnConfig
from genforget.lm.hf_trainer import UnlearningTrainer
from genforget.lm.trainer import unlearn_lm

STEPS = 3
# Both sides see the same full batches (the whole forget and retain sets each step); what differs is
# the order of rows inside a batch (Trainer's sampler vs genforget's), so sums differ by rounding.
RTOL, ATOL = 1e-4, 1e-5


def _args(tmp_path, **kw) -> TrainingArguments:
    base = dict(
        output_dir=str(tmp_path / "trainer"),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    return TrainingArguments(**{**base, **kw})


def _recording(trainer: UnlearningTrainer) -> list[float]:
    seen: list[float] = []
    inner = trainer.compute_loss

    def record(*a, **k):
        loss = inner(*a, **k)
        seen.append(loss.item())
        return loss

    trainer.compute_loss = record
    return seen


def _data(corpus):
    """Short prompt -> value pairs (4 forget, 8 retain): the steps stay cheap on a shared CPU."""
    pairs = [{"prompt": p["prompt"], "target": p["value"]} for p in corpus.pii_probes("forget")]
    retain = [{"prompt": p["prompt"], "target": p["value"]} for p in corpus.pii_probes("retain")]
    return pairs[:4], retain[:8]


@pytest.mark.parametrize(
    "method,use_lora", [("npo", False), ("grad_diff", False), ("npo", True), ("grad_diff", True)]
)
def test_trainer_losses_equal_genforget_loop(tiny_lm, tokenizer, corpus, tmp_path, method, use_lora):
    forget, retain = _data(corpus)
    assert len(forget) == 4
    twin = copy.deepcopy(tiny_lm)
    cfg = UnlearnConfig(
        method=method, learning_rate=1e-2, max_steps=STEPS, batch_size=4, retain_batch_size=8,
        plain=True, use_lora=use_lora, logging_steps=1, seed=0,
    )  # fmt: skip
    history: list[dict] = []
    unlearn_lm(tiny_lm, tokenizer, forget, retain, cfg, history=history)
    own = [r["loss"] for r in history if "loss" in r]

    trainer = UnlearningTrainer(
        twin, _args(tmp_path), forget=forget, retain=retain, processing_class=tokenizer,
        config={"method": method, "retain_batch_size": 8, "use_lora": use_lora},
    )  # fmt: skip
    seen = _recording(trainer)
    trainer.train()
    assert len(own) == len(seen) == STEPS
    assert seen == pytest.approx(own, rel=RTOL, abs=ATOL)
    assert len(set(round(x, 4) for x in seen)) > 1  # the weights moved between steps
    logged = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert logged == pytest.approx(own, rel=1e-3, abs=1e-4)  # Trainer's own log (rounded)
    assert all("forget_nll" in r for r in trainer.state.log_history if "loss" in r)
    assert isinstance(trainer.model, PeftModel) == use_lora


def test_gradient_accumulation_gives_the_same_step_as_one_batch(tiny_lm, tokenizer, corpus, tmp_path):
    """2 micro-batches of 2 x accumulation 2 = one batch of 4 (grad_ascent: no retain draw). SGD:
    Adam's first step is nearly sign(grad), which turns rounding in near-zero entries into lr-sized
    differences."""
    forget, _ = _data(corpus)
    twin = copy.deepcopy(tiny_lm)
    twin_before = twin.model.layers[0].mlp.up_proj.weight.detach().clone()
    one = UnlearningTrainer(
        tiny_lm, _args(tmp_path, max_steps=1, optim="sgd"), forget=forget, method="grad_ascent",
        processing_class=tokenizer,
    )  # fmt: skip
    one.train()
    acc = UnlearningTrainer(
        twin, _args(tmp_path, max_steps=1, optim="sgd", per_device_train_batch_size=2, gradient_accumulation_steps=2),
        forget=forget, method="grad_ascent", processing_class=tokenizer,
    )  # fmt: skip
    acc.train()
    a, b = dict(one.model.named_parameters()), dict(acc.model.named_parameters())
    # Per-example means averaged: two micro-batch means of 2 rows / 2 = the mean over the 4 rows.
    for name in a:
        assert b[name].detach().allclose(a[name].detach(), rtol=1e-5, atol=1e-7), name
    assert (
        not a["model.layers.0.mlp.up_proj.weight"].detach().allclose(twin_before)
    )  # the step did move the weights
    assert one.state.log_history[0]["loss"] == pytest.approx(acc.state.log_history[0]["loss"], rel=1e-3)


def test_evaluate_keeps_the_best_checkpoint_and_saves_a_card(tiny_lm, tokenizer, corpus, tmp_path):
    forget, retain = _data(corpus)
    args = _args(
        tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2, learning_rate=5e-2,
        metric_for_best_model="forget_nll", greater_is_better=True, load_best_model_at_end=True,
    )  # fmt: skip
    trainer = UnlearningTrainer(
        tiny_lm, args, forget=forget, retain=retain, method="grad_diff", processing_class=tokenizer,
        config={"retain_batch_size": 8},
    )  # fmt: skip
    trainer.train()
    evals = [r for r in trainer.state.log_history if "eval_forget_nll" in r]
    assert [r["step"] for r in evals] == [2, 4]
    best = max(evals, key=lambda r: r["eval_forget_nll"])
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
    assert trainer.state.best_metric == pytest.approx(best["eval_forget_nll"])
    assert trainer.outcome is not None and trainer.outcome.forget_after.nll == pytest.approx(
        best["eval_forget_nll"], rel=1e-4
    )  # the loaded weights are the best step's
    out = tmp_path / "final"
    trainer.save_model(str(out))
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and "grad_diff" in card.data.tags
    text = (out / "README.md").read_text()
    assert trainer.data_record["forget_sha256"] in text and "forget_examples: `4`" in text
    for ex in forget:
        assert ex["target"] not in text and ex["prompt"] not in text
    for value in corpus.pii_values("forget"):
        assert value not in text


def test_trainer_refuses_what_it_cannot_run(tiny_lm, tokenizer, corpus, tmp_path):
    forget, _ = _data(corpus)
    with pytest.raises(ValueError, match="one-shot"):
        UnlearningTrainer(
            tiny_lm, _args(tmp_path), forget=forget, method="newton", processing_class=tokenizer
        )
    with pytest.raises(ValueError, match="not language models"):
        UnlearningTrainer(tiny_lm, _args(tmp_path), forget=forget, method="esd", processing_class=tokenizer)
    with pytest.raises(ValueError, match="processing_class"):
        UnlearningTrainer(tiny_lm, _args(tmp_path), forget=forget, method="npo")
