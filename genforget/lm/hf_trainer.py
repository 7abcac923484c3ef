"""``UnlearningTrainer``: genforget's method losses inside a ``transformers.Trainer``.

The way TRL's trainers are built (``DPOTrainer`` subclasses ``Trainer``, overrides
``compute_loss``, keeps its reference as precomputed log-probs or the adapter switched off) and the
way open-unlearning's unlearning trainers pair forget and retain data: the train dataset is the
forget set, each training micro-step also draws a retain batch, and ``compute_loss`` runs the
registered method's loss (``genforget.methods``) on them exactly as genforget's own loop
(:func:`genforget.lm.trainer.unlearn_lm`) does: one packed forward, the target-only LM head, the
frozen reference as a cached log-prob table (full fine-tuning) or the LoRA-off base. Everything
else — ``TrainingArguments`` (DeepSpeed / FSDP, gradient accumulation, bf16, ``report_to``,
``save_strategy``, ``push_to_hub``), callbacks, resume — is Trainer's.

``evaluate()`` returns genforget's extraction figures (``eval_forget_extraction``,
``eval_retain_extraction``, their NLLs and ``eval_gap`` = retain minus forget extraction), so
``eval_strategy="steps"`` + ``metric_for_best_model`` + ``load_best_model_at_end`` keep the best
checkpoint by Trainer's own rules. ``train()`` ends with the run's
:class:`~genforget.lm.outcome.Outcome` (printed, :class:`~genforget.lm.outcome.OutcomeWarning`
unless forgotten), and ``save_model`` writes a model card (:mod:`genforget.lm.model_card`).

Not here (genforget's own loop has them): calibrated stop, collateral watch, divergence guard,
robustness remedies, UNDO, one-shot methods (newton) and the diffusion methods.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainingArguments, set_seed

from genforget.adapters import add_lora, is_peft_model
from genforget.config import UnlearnConfig
from genforget.data.loaders import as_examples, fingerprint
from genforget.lm.batches import attach_reference, cached_reference_logp, concat_batches
from genforget.lm.chat import render_examples
from genforget.lm.data import Collator, tokenize_all
from genforget.lm.method_hooks import prepare_method
from genforget.lm.outcome import Outcome, OutcomeProbe, measure, report
from genforget.lm.scoring import scores_from_tokens, token_logprobs
from genforget.methods.registry import get_method

# What the collated batches hold; Trainer would drop ``idx`` (not a forward argument) otherwise.
_COLUMNS = ["input_ids", "labels", "attention_mask", "idx"]


class _Features(Dataset):
    """Tokenized examples as a map-style dataset (Trainer's sampler, sharding and resume apply)."""

    def __init__(self, feats: list[dict]) -> None:
        self.feats = feats

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict:
        return self.feats[i]


class UnlearningTrainer(Trainer):
    """A ``Trainer`` whose loss is a registered unlearning method's (NPO: Zhang et al. 2024,
    arXiv:2404.05868; GradDiff; SimNPO: Fan et al. 2024, arXiv:2410.07163; RMU: Li et al. 2024,
    arXiv:2403.03218; ... see :mod:`genforget.methods`).

    ``forget`` / ``retain``: examples in any form :func:`genforget.unlearn` takes (lists of
    ``{"text"}``, ``{"prompt","target"}``, chats, a ``datasets.Dataset``, a JSONL path).
    ``config``: an :class:`~genforget.config.UnlearnConfig` (or a dict of its fields) for the
    method's own knobs (``method``, ``beta``, ``gamma``, ``retain_weight``, ``retain_batch_size``,
    ``max_length``, ``use_lora`` and the LoRA fields, ``rmu_*``); the optimisation knobs
    (learning rate, steps, forget batch size, clipping, seed) are ``args``'s. ``method`` is a
    shortcut for ``config.method``. ``ref_model``: a frozen model run every step as the reference
    instead of the cached table (the naive baseline; rarely wanted).
    With ``use_lora`` (or a ``PeftModel`` given) the reference is the model with its adapter off.
    """

    # The loss is a mean over this micro-batch: Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments | None = None,
        *,
        forget: Any,
        retain: Any = None,
        method: str | None = None,
        config: UnlearnConfig | dict | None = None,
        processing_class: Any = None,
        ref_model: torch.nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if processing_class is None:
            raise ValueError(
                "UnlearningTrainer needs processing_class=<the tokenizer> to tokenize forget/retain"
            )
        cfg = config if isinstance(config, UnlearnConfig) else UnlearnConfig(**(config or {}))
        if method is not None:
            cfg = dataclasses.replace(cfg, method=method)
        args = args or TrainingArguments(output_dir="unlearn_trainer_output")
        self.unlearn_config = cfg
        self.method = get_method(cfg.method)(cfg)
        if "lm" not in self.method.modalities:
            raise ValueError(
                f"method {cfg.method!r} is for {self.method.modalities} models, not language models"
            )
        if getattr(self.method, "one_shot", False):
            raise ValueError(f"method {cfg.method!r} is a one-shot update, not a loss: use genforget.unlearn")
        tok = processing_class
        forget_ex = render_examples(as_examples(forget, "forget"), tok)
        retain_ex = render_examples(as_examples(retain, "retain"), tok) if retain is not None else []
        if not forget_ex:
            raise ValueError("forget set is empty: give at least one example to unlearn")
        self.data_record = {
            "forget_examples": len(forget_ex),
            "forget_sha256": fingerprint(forget_ex),
            "retain_examples": len(retain_ex),
            "retain_sha256": fingerprint(retain_ex) if retain_ex else None,
        }
        self._collate = Collator(tok)
        forget_feats = tokenize_all(forget_ex, tok, cfg.max_length, "forget")
        self._retain_feats = (
            tokenize_all(retain_ex, tok, cfg.max_length, "retain")
            if retain_ex and self.method.uses_retain
            else []
        )
        device = args.device
        self._probe = OutcomeProbe(forget_ex, retain_ex, tok, cfg.max_length, None, cfg.seed)
        self._probe.start(model.to(device))  # figures before any update, on the forget set as given
        ref_model = ref_model.requires_grad_(False).eval().to(device) if ref_model is not None else None
        model, cfg, forget_feats, self._run = prepare_method(
            self.method,
            model,
            tok,
            forget_ex,
            forget_feats,
            self._retain_feats,
            cfg,
            self._collate,
            device,
            ref_model,
        )
        self.unlearn_config = cfg
        if cfg.use_lora:
            set_seed(args.seed)  # the adapter's init: what genforget's loop seeds it with
            model = add_lora(model, cfg, print)
        self._ref_table = None
        if self.method.needs_ref and ref_model is None and not is_peft_model(model):
            # DPOTrainer's precompute_ref_log_probs: the frozen reference's scores never change.
            self._ref_table = cached_reference_logp(model, forget_feats, self._collate).to(device)
        self._ref_model = ref_model
        self._retain_loader: DataLoader | None = None
        self._retain_iter = None
        self._sums: dict[str, list[float]] = {}
        self.outcome: Outcome | None = None
        forget_ds = _Features(forget_feats)
        super().__init__(
            model=model,
            args=args,
            train_dataset=forget_ds,
            eval_dataset=kwargs.pop("eval_dataset", forget_ds),  # evaluate() scores the forget set itself
            data_collator=self._collate,
            processing_class=tok,
            **kwargs,
        )
        self.model_accepts_loss_kwargs = False  # transformers < 5: also what triggers the 1/GA scaling

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = list(_COLUMNS)

    def _next_retain(self) -> dict | None:
        """The next retain batch (``config.retain_batch_size`` per process), reshuffled every pass."""
        if not self._retain_feats:
            return None
        if self._retain_loader is None:
            n, size = len(self._retain_feats), self.unlearn_config.retain_batch_size
            loader = DataLoader(
                _Features(self._retain_feats),
                batch_size=min(size, n),
                shuffle=True,
                drop_last=True,  # every step the same number of retain rows
                collate_fn=self._collate,
                generator=torch.Generator().manual_seed(self.args.seed),
            )
            self._retain_loader = self.accelerator.prepare_data_loader(loader)
        for _ in range(2):
            if self._retain_iter is not None:
                batch = next(self._retain_iter, None)
                if batch is not None:
                    return {k: v.to(self.args.device) for k, v in batch.items() if k != "idx"}
            self._retain_iter = iter(self._retain_loader)
        raise RuntimeError("the retain loader yields no batch")  # pragma: no cover (drop_last with n >= size)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """The method's loss on this forget micro-batch and a fresh retain batch (one packed forward)."""
        fb = dict(inputs)
        idx = fb.pop("idx")
        rb = self._next_retain()
        n_f = fb["input_ids"].shape[0]
        batch = concat_batches(fb, rb, self._collate.pad_token_id) if rb is not None else fb
        tok_logp, tok_mask = token_logprobs(model, batch)
        retain_scores = scores_from_tokens(tok_logp[n_f:], tok_mask[n_f:]) if rb is not None else None
        scores = scores_from_tokens(tok_logp[:n_f], tok_mask[:n_f])
        raw = self.accelerator.unwrap_model(model)
        scores = attach_reference(
            self.method.needs_ref, self._ref_table, self._ref_model, raw, scores, fb, idx
        )
        loss = self._run.loss(scores, retain_scores, model, raw, fb, idx, rb)
        if model.training:
            self._keep("forget_nll", scores.nll.detach().mean())
            if retain_scores is not None:
                self._keep("retain_nll", retain_scores.nll.detach().mean())
        return (loss, {"forget_nll": scores.nll.detach()}) if return_outputs else loss

    def _keep(self, name: str, value: torch.Tensor) -> None:
        # Averaged over the processes when logged (TRL's `_metrics` pattern), read at logging steps only.
        self._sums.setdefault(name, []).append(value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer's log plus the mean forget / retain NLL of the steps since the last one."""
        if "loss" in logs and self._sums:
            for name, vals in self._sums.items():
                mean = torch.stack(vals).float().mean()
                logs[name] = self.accelerator.reduce(mean.to(self.args.device), "mean").item()
            self._sums = {}
        super().log(logs, start_time)

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Greedy extraction and NLL of the forget and retain probes under the current model.

        ``{prefix}_forget_extraction`` (lower is better), ``{prefix}_retain_extraction`` (higher),
        their ``_nll`` and ``_accuracy``, and ``{prefix}_gap`` = retain - forget extraction: what
        ``metric_for_best_model`` picks from (``greater_is_better`` as the metric wants)."""
        model = self.model
        forget = measure(model, self._probe.forget, self._collate)
        retain = measure(model, self._probe.retain, self._collate) if self._probe.retain else None
        p = metric_key_prefix
        metrics = {
            f"{p}_forget_extraction": forget.extraction,
            f"{p}_forget_nll": forget.nll,
            f"{p}_forget_accuracy": forget.accuracy,
        }
        if retain is not None:
            metrics.update(
                {
                    f"{p}_retain_extraction": retain.extraction,
                    f"{p}_retain_nll": retain.nll,
                    f"{p}_retain_accuracy": retain.accuracy,
                    f"{p}_gap": retain.extraction - forget.extraction,
                }
            )
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def train(self, *args: Any, **kwargs: Any):
        """Trainer's ``train``, then the outcome (forget/retain before and after, a status)."""
        out = super().train(*args, **kwargs)
        events = [f"ran {self.state.global_step} Trainer steps"]
        if self.state.best_model_checkpoint and self.args.load_best_model_at_end:
            events.append(f"kept the best checkpoint by {self.args.metric_for_best_model}")
        self.outcome = self._probe.finish(self.model, events)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            report(self.outcome, self.accelerator)
        return out

    def _card_kwargs(self) -> dict:
        args = self.args
        training = {
            k: getattr(args, k)
            for k in (
                "learning_rate",
                "max_steps",
                "num_train_epochs",
                "per_device_train_batch_size",
                "gradient_accumulation_steps",
                "lr_scheduler_type",
                "max_grad_norm",
                "seed",
            )
        }
        training["lr_scheduler_type"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
        return {
            "config": dataclasses.asdict(self.unlearn_config),
            "training": training,
            "data": self.data_record,
            "outcome": self.outcome.to_dict() if self.outcome is not None else None,
            "metrics": next(
                (r for r in reversed(self.state.log_history) if "eval_forget_extraction" in r), None
            ),
        }

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Trainer's save (full model or PEFT adapter dir) plus a model card (``README.md``)."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            from genforget.lm.model_card import write_lm_card

            write_lm_card(
                output_dir or self.args.output_dir,
                self.accelerator.unwrap_model(self.model),
                **self._card_kwargs(),
            )

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """``push_to_hub`` writes the card through here: genforget's card, not Trainer's summary."""
        if self.is_world_process_zero():
            from genforget.lm.model_card import write_lm_card

            write_lm_card(
                self.args.output_dir, self.accelerator.unwrap_model(self.model), **self._card_kwargs()
            )
