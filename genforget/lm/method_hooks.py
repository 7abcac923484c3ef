"""The LM trainer's side of the method hooks (see :class:`genforget.methods.base.Method`).

Two calls from :func:`genforget.lm.trainer.unlearn_lm`: :func:`prepare_method` once before
training (runs ``Method.prepare``, restricts what trains, installs the activation capture) and
:meth:`MethodRun.loss` each step in place of ``method.loss`` (fills ``Scores.hidden``,
``retain.ref_hidden`` and ``forget.chosen`` for the methods that declare them).

Frozen activations (RMU's retain term) are never taken from a second model: with LoRA the adapter
is switched off; with full fine-tuning only the few restricted modules train, so a copy of just
their original weights is swapped in by ``torch.func.functional_call`` for a no-grad forward that
stops at the hooked layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch.func import functional_call

from genforget.adapters import reference_mode
from genforget.config import UnlearnConfig
from genforget.lm.arch import decoder_layers
from genforget.lm.data import IGNORE, Collator, tokenize_example
from genforget.lm.scoring import sequence_scores
from genforget.methods.base import Method, PrepareContext
from genforget.scores import Scores


class _Stop(Exception):
    """Raised by a hook to end a forward pass at the hooked layer (nothing later is needed)."""


def _output(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def _batches(feats: list[dict], collate: Collator, device, size: int = 32) -> Iterator[dict]:
    for i in range(0, len(feats), size):
        yield {k: v.to(device) for k, v in collate(feats[i : i + size]).items() if k != "idx"}


@torch.no_grad()
def _layer_output(model, layer: torch.nn.Module, batch: dict, params: dict | None = None) -> torch.Tensor:
    """``[B, T, D]`` output of ``layer`` for ``batch``, the forward cut short there; ``params``:
    replacement parameters (by full name) for :func:`functional_call`."""
    got: list[torch.Tensor] = []

    def grab(_m, _i, out):
        got.append(_output(out))
        raise _Stop

    handle = layer.register_forward_hook(grab)
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    try:
        if params:
            functional_call(model, params, args=(), kwargs=kwargs)
        else:
            model(**kwargs)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got[0]


def _targets(h: torch.Tensor, batch: dict) -> torch.Tensor:
    """Rows of ``h`` at the positions that *predict* a target token (``labels[t + 1] != -100``),
    stacked ``[N, D]``: the activation at t is what produces token t + 1, so these are the ones
    to steer (the token-level loss's alignment). For a whole-text example: every token but the last."""
    predicts = torch.zeros_like(batch["labels"], dtype=torch.bool)
    predicts[:, :-1] = batch["labels"][:, 1:] != IGNORE
    return h[predicts]


@dataclasses.dataclass
class MethodRun:
    """State the per-step hook needs; built by :func:`prepare_method`."""

    method: Method
    config: UnlearnConfig
    collate: Collator
    raw: torch.nn.Module
    chosen_feats: list[dict] | None = None
    chosen_ref: torch.Tensor | None = None
    ref_copy: torch.nn.Module | None = None
    layer: torch.nn.Module | None = None
    frozen_params: dict | None = None
    captured: list = dataclasses.field(default_factory=list)
    info: dict = dataclasses.field(default_factory=dict)
    handle: torch.utils.hooks.RemovableHandle | None = None
    frozen_flags: dict | None = None

    def _capture(self, _m, _i, out) -> None:
        # Only training forwards (grad on); reference, calibration and frozen passes run no-grad.
        # Gradient checkpointing re-runs the layer in backward: loss() reads the latest entries.
        if torch.is_grad_enabled():
            self.captured.append(_output(out))

    def close(self) -> None:
        """After training: remove the capture hook and give every parameter back its
        ``requires_grad`` flag (a restricted full fine-tune froze the others)."""
        if self.handle is not None:
            self.handle.remove()
        self.captured.clear()
        for p, flag in (self.frozen_flags or {}).items():
            p.requires_grad_(flag)

    def _frozen_hidden(self, batch: dict) -> torch.Tensor:
        if self.config.use_lora:
            with reference_mode(self.raw):
                return _layer_output(self.raw, self.layer, batch)
        return _layer_output(self.raw, self.layer, batch, self.frozen_params)

    def loss(
        self,
        scores: Scores,
        retain_scores: Scores | None,
        model: torch.nn.Module,
        raw: torch.nn.Module,
        forget_batch: dict,
        idx: torch.Tensor,
        retain_batch: dict | None,
    ) -> torch.Tensor:
        """``method.loss`` with the extra fields the method declared filled in.

        ``model`` is the trained (possibly DDP-wrapped) model, ``raw`` the unwrapped one (a
        ``PeftModel`` under LoRA, whose adapter is switched off for frozen passes)."""
        method = self.method
        self.raw = raw
        if method.needs_hidden:
            n_f, t_f = forget_batch["input_ids"].shape
            if retain_scores is not None and len(self.captured) >= 2 and self.captured[-2].shape[0] == n_f:
                hidden = self.captured[-2:]  # separate forget and retain forwards
            else:
                # One packed forward (rows: forget, then retain, padded to one length): split it.
                h = self.captured[-1]
                hidden = [h[:n_f, :t_f]]
                if retain_scores is not None:
                    hidden.append(h[n_f:, : retain_batch["input_ids"].shape[1]])
            self.captured.clear()
            scores.hidden = _targets(hidden[0], forget_batch)
            if retain_scores is not None:
                retain_scores.hidden = _targets(hidden[1], retain_batch)
                retain_scores.ref_hidden = _targets(self._frozen_hidden(retain_batch), retain_batch)
        if method.needs_chosen:
            device = scores.logp.device
            rows = [self.chosen_feats[i] for i in idx.tolist()]
            cb = {k: v.to(device) for k, v in self.collate(rows).items()}
            chosen = sequence_scores(model, cb)
            if self.chosen_ref is not None:
                chosen.ref_logp = self.chosen_ref.to(device)[idx]
            elif self.ref_copy is not None:
                with torch.no_grad():
                    chosen.ref_logp = sequence_scores(self.ref_copy, cb).logp
            else:
                with reference_mode(self.raw):
                    chosen.ref_logp = sequence_scores(self.raw, cb).logp
            scores.chosen = chosen
        return method.loss(scores, retain_scores)


def prepare_method(
    method: Method,
    model: torch.nn.Module,
    tokenizer,
    forget: list[dict],
    forget_feats: list[dict],
    retain_feats: list[dict],
    config: UnlearnConfig,
    collate: Collator,
    device: torch.device,
    ref_copy: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, UnlearnConfig, list[dict], MethodRun]:
    """Run ``method.prepare`` and its restrictions on the (not yet LoRA-wrapped) ``model``.

    Returns ``(model, config, forget_feats, run)``: ``config`` with ``lora_target_modules``
    narrowed to ``method.trainable_modules`` (LoRA), ``forget_feats`` as the method rewrote them,
    and the :class:`MethodRun` whose ``loss`` the loop calls. Full fine-tuning with restricted
    modules leaves every other parameter ``requires_grad=False``.
    """
    model.to(device)

    def tokenize(examples: list[dict]) -> list[dict]:
        return [
            dict(tokenize_example(ex, tokenizer, config.max_length), idx=i) for i, ex in enumerate(examples)
        ]

    def frozen_hidden(feats: list[dict], index: int) -> torch.Tensor:
        layer = decoder_layers(model, config.layer_pattern)[index][1]
        was = model.training
        model.eval()
        out = torch.cat(
            [_targets(_layer_output(model, layer, b), b) for b in _batches(feats, collate, device)]
        )
        model.train(was)
        return out

    ctx = PrepareContext(
        model, tokenizer, config, forget, forget_feats, retain_feats, tokenize, frozen_hidden
    )
    method.prepare(ctx)
    run = MethodRun(
        method, config, collate, model, chosen_feats=ctx.chosen_feats, ref_copy=ref_copy, info=ctx.info
    )

    modules = method.trainable_modules(model)
    if modules is not None:
        if config.use_lora:
            config = dataclasses.replace(config, lora_target_modules=list(modules))
        else:
            keep = tuple(m + "." for m in modules)

            def kept(name: str) -> bool:  # a module's parameters, or a named (3-D expert) parameter
                return name.startswith(keep) or name in modules

            run.frozen_flags = {p: p.requires_grad for p in model.parameters()}
            for name, p in model.named_parameters():
                p.requires_grad_(kept(name))
            if method.needs_hidden:
                # The frozen model differs from the trained one only in these: keep their originals.
                run.frozen_params = {n: p.detach().clone() for n, p in model.named_parameters() if kept(n)}
    if method.needs_hidden and not config.use_lora and run.frozen_params is None:
        # Nothing restricted: every weight may move, so keep a copy of all of them (a state
        # dict, not a second model; a method that trains few modules should say which).
        run.frozen_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    if method.needs_hidden:
        layers = decoder_layers(model, config.layer_pattern)
        run.layer = layers[method.hidden_layer(len(layers))][1]
        run.handle = run.layer.register_forward_hook(run._capture)
    if method.needs_chosen:
        if ctx.chosen_feats is None:
            raise ValueError(f"method {method.name!r} needs_chosen but its prepare() set no chosen_feats")
        if not config.use_lora and ref_copy is None:
            from genforget.lm.batches import cached_reference_logp

            run.chosen_ref = cached_reference_logp(model, ctx.chosen_feats, collate)
    return model, config, ctx.forget_feats, run


def reinforced_logits(ctx: PrepareContext, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """WHP's baseline and reinforced logits ``[T, V]`` of every forget feature.

    The reinforced model is a LoRA adapter trained ``steps`` steps on the forget features (NLL,
    ``config.learning_rate``); the baseline is the same model under ``disable_adapter()``. The
    adapter is unloaded afterwards, the base weights and their ``requires_grad`` flags restored.
    """
    from peft import get_peft_model

    from genforget.adapters import lora_config

    model, cfg = ctx.model, ctx.config
    device = next(model.parameters()).device
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    # The same targets the unlearning adapter would get (every linear layer of the blocks by default).
    peft = get_peft_model(model, lora_config(model, dataclasses.replace(cfg, lora_dropout=0.0))[0])
    collate = Collator(ctx.tokenizer)
    opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=cfg.learning_rate)
    g = torch.Generator().manual_seed(cfg.seed)
    peft.train()
    for _ in range(steps):
        pick = torch.randperm(len(ctx.forget_feats), generator=g)[: cfg.batch_size].tolist()
        batch = {
            k: v.to(device) for k, v in collate([ctx.forget_feats[i] for i in pick]).items() if k != "idx"
        }
        loss = -sequence_scores(peft, batch).logp.sum() / (batch["labels"] != IGNORE).sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peft.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(ctx.forget_feats), 16):
            chunk = ctx.forget_feats[start : start + 16]
            # Right padding: a row's logits before its padding do not depend on it.
            b = collate(chunk)
            kwargs = {
                "input_ids": b["input_ids"].to(device),
                "attention_mask": b["attention_mask"].to(device),
            }
            reinforced = peft(**kwargs).logits.float()
            with peft.disable_adapter():
                base = peft(**kwargs).logits.float()
            out += [
                (base[i, : len(f["input_ids"])], reinforced[i, : len(f["input_ids"])])
                for i, f in enumerate(chunk)
            ]
    base_model = peft.unload()
    for n, p in base_model.named_parameters():
        p.requires_grad_(flags[n])
    if hasattr(base_model, "peft_config"):
        del base_model.peft_config  # so a later add_lora sees a plain model again
    return out
