"""The LM unlearning loop: forget/retain batches -> Scores -> method loss -> optimizer.

Works with a plain model on the CPU and under ``accelerate launch`` (DDP, FSDP, DeepSpeed ZeRO):
the loop touches the model through ``accelerator.prepare``/``backward``/``clip_grad_norm_`` on the
*prepared* model, its state through :class:`~genforget.lm.train_state.TrainState`, and each
process takes its slice of the same global batches (:func:`~genforget.lm.distributed.sharded_batches`),
so N processes train as one does (see docs/distributed.md).
"""

from __future__ import annotations

import copy
import functools
import time

import torch
from accelerate import Accelerator, DistributedType
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from genforget.adapters import add_lora
from genforget.config import UnlearnConfig
from genforget.lm.batches import (
    attach_reference,
    cached_reference_logp,
    concat_batches,
    flush_history,
    forget_loss_again,
    forget_nll_at,
)
from genforget.lm.chat import render_examples
from genforget.lm.data import Collator, normalise_example, tokenize_all
from genforget.lm.distributed import (
    check_engine,
    configure_engine,
    describe_engine,
    engine_line,
    make_accelerator,
    sharded_batches,
)
from genforget.lm.method_hooks import prepare_method
from genforget.lm.outcome import OutcomeProbe, finish_run, run_events
from genforget.lm.quant import keep_4bit_trainable, prepare_4bit_for_training
from genforget.lm.remedies.robust import RobustStep
from genforget.lm.safeguards.checkpoint import Checkpointer
from genforget.lm.safeguards.guard import DivergenceGuard
from genforget.lm.safeguards.snapshots import SnapshotStore
from genforget.lm.safeguards.stopping import (
    CalibratedStop,
    add_calibration_trace,
    check_stop,
    report_stop,
    settle,
)
from genforget.lm.scoring import scores_from_tokens, sequence_scores, token_logprobs
from genforget.lm.tracking import RunTracker
from genforget.lm.train_state import TrainState
from genforget.lm.twins import sentence_probes
from genforget.lm.vocab import check_ids_fit, check_vocab_fits
from genforget.methods.registry import get_method


def _whole_text(ex: dict) -> dict:
    """The example with every token a target: what a membership attack scores."""
    return {"text": normalise_example(ex)["text"]}


# Off only to measure what one packed forget + retain forward saves (bench/step_cost.py).
PACK_FORGET_RETAIN = True


def check_tokenizer_matches(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse a tokenizer whose ids do not fit the model's embedding table."""
    check_vocab_fits(model, tokenizer)  # extra special tokens the data never produces are fine


def unlearn_lm(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: list[dict],
    retain: list[dict] | None,
    config: UnlearnConfig,
    accelerator: Accelerator | None = None,
    calibration: list[dict] | None = None,
    history: list[dict] | None = None,
    collateral: list[dict] | None = None,
    outcome: dict | None = None,
    engine: dict | None = None,
) -> torch.nn.Module:
    """Unlearn ``forget`` from ``model`` (keeping ``retain``) with ``config.method``.

    ``collateral``: retain examples with spans on other people's targets of the same kind;
    with ``calibration``, their greedy extraction is watched: past the bound (a tenth of them
    lost) the run repairs on the retain term once the forget set is out, backs off (last good
    weights, half the learning rate) if it stays past while still forgetting, and never returns
    weights past it without saying so (see :mod:`genforget.lm.safeguards.stopping`).
    ``calibration``: examples like the forget set but never trained on; when given, training
    stops early (checked every ``config.calibration_every`` steps) once the forget set is no more
    likely than they are (see :mod:`genforget.lm.safeguards.stopping`).
    ``history``: when given, one dict per step is appended (``step``, ``loss``, ``forget_nll``,
    ``seconds``, ``tokens`` = non-pad tokens through the trained model), trl's ``log_history``;
    steps with a calibrated-stop check also carry ``calibration_forget`` and
    ``calibration_unseen``, and a stop adds a row with ``stopped: True``.
    ``outcome``: when given, filled with the run's :class:`~genforget.lm.outcome.Outcome` as a
    dict (forget/retain figures before and after, ``status`` forgotten | partial | unchanged, the
    reason). Every run measures it, prints it, and warns (:class:`OutcomeWarning`) unless forgotten.
    ``engine``: when given, filled with :func:`~genforget.lm.distributed.describe_engine` of the
    prepared run (distributed type, world size, sharding, precision, shares held per process).
    Returns the trained model: a ``PeftModel`` when ``config.use_lora``, else ``model`` itself.
    Under FSDP / DeepSpeed ZeRO-3 its parameters are this process's shards: gather them with
    ``accelerator.get_state_dict`` before saving (the recipe does).
    """
    if not forget:
        raise ValueError("forget set is empty: give at least one example to unlearn")
    if config.undo_alpha > 0 and not retain:  # before training, not after it
        raise ValueError(
            "undo_alpha needs retain data to distil on (retain_data); give some or set undo_alpha 0"
        )
    check_tokenizer_matches(model, tokenizer)
    keep_4bit_trainable(model, unpack=True)  # before any no-grad scoring pass (genforget.lm.quant)
    method = get_method(config.method)(config)
    if "lm" not in method.modalities:
        raise ValueError(f"method {config.method!r} is for {method.modalities} models, not language models")
    accelerator = accelerator or make_accelerator()
    tracker = RunTracker(accelerator, config)  # report_to: accelerate's trackers, main process only
    # Refusals (quantized base, multi-backward remedies, UNDO, RMU's frozen pass) and DeepSpeed's clipping.
    configure_engine(accelerator, config, model, method)
    # save_every / resume_from: checks config, data and model against the checkpoint.
    ckpt = Checkpointer(config, accelerator, model, forget, retain, calibration, collateral)
    # Chats rendered with the tokenizer's template (after the checkpoint fingerprints the data
    # as given); `plain`: a fixed-step run with no stop, collateral watch or guard.
    forget, retain, calibration, collateral = (
        render_examples(list(x), tokenizer) if x else x for x in (forget, retain, calibration, collateral)
    )
    if config.plain:
        calibration = collateral = None
    torch.manual_seed(config.seed)
    collate = Collator(tokenizer)
    forget_feats = tokenize_all(forget, tokenizer, config.max_length, "forget")
    retain_feats = (
        tokenize_all(retain, tokenizer, config.max_length, "retain") if retain and method.uses_retain else []
    )
    probe = OutcomeProbe(forget, retain, tokenizer, config.max_length, collateral, config.seed)
    for name, feats in (("forget", forget_feats), ("retain", retain_feats), ("retain", probe.retain)):
        check_ids_fit(model, feats, name)  # a special token's text in the data, beyond the embedding

    ref_cache = ref_copy = None
    # UNDO's victim teacher: the weights as given, before any step moves them.
    teacher = None
    if config.undo_alpha > 0 and config.undo_teacher == "victim":
        teacher = copy.deepcopy(model).requires_grad_(False).eval()
    if method.needs_ref and config.reference == "copy":
        # The naive reference open toolkits use, kept for inputs that are not deterministic and
        # as the benchmark's baseline: a second model in memory and a second forward per step.
        ref_copy = copy.deepcopy(model).requires_grad_(False).eval().to(accelerator.device)
    # Method hooks: prepare() (refusals, WHP labels, RMU's control vector), restricted modules,
    # and the extra Scores fields (hidden, chosen) filled each step by method_run.loss.
    model, config, forget_feats, method_run = prepare_method(
        method,
        model,
        tokenizer,
        forget,
        forget_feats,
        retain_feats,
        config,
        collate,
        accelerator.device,
        ref_copy,
    )
    probe.start(model)  # forget/retain figures before any update (on the forget set as given)
    if config.gradient_checkpointing:
        # Non-reentrant checkpointing also works when only a LoRA adapter requires gradients.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = prepare_4bit_for_training(model, config)  # QLoRA: a 4-bit base (genforget.lm.quant)
    if config.use_lora:
        model = add_lora(model, config, accelerator.print)
    model.to(accelerator.device)
    if getattr(method, "one_shot", False):  # a closed-form update (newton), not a loss to descend
        record = method.apply(model, forget_feats, retain_feats, collate)
        if history is not None:
            history.append(record)
        method_run.close()
        finish_run(
            probe,
            model,
            run_events(None, None, config.max_steps, one_shot=True),
            accelerator,
            outcome,
            tracker,
        )
        return model.eval()
    if method.needs_ref and not config.use_lora and ref_copy is None:
        # At the training batch size: a larger caching batch would set the peak memory of a small run.
        ref_cache = cached_reference_logp(model, forget_feats, collate, config.batch_size).to(
            accelerator.device
        )

    snapshots = SnapshotStore()  # the guard's and the collateral watch's good states, each held once
    stop = None
    if calibration:
        text_level = config.calibration_statistic == "text_min_k"
        calib_feats = tokenize_all(
            [_whole_text(ex) for ex in calibration] if text_level else calibration,
            tokenizer,
            config.max_length,
        )
        stop = CalibratedStop(
            len(forget_feats),
            calib_feats,
            collate,
            every=config.calibration_every,
            statistic=config.calibration_statistic,
            seed=config.seed,
            forget_text_feats=tokenize_all([_whole_text(ex) for ex in forget], tokenizer, config.max_length)
            if text_level
            else None,
            collateral_feats=tokenize_all(collateral, tokenizer, config.max_length) if collateral else None,
            collateral_probe_feats=tokenize_all(sentence_probes(collateral), tokenizer, config.max_length)
            if collateral
            else None,
            collateral_max_loss=config.collateral_max_loss,
            forget_target_feats=probe.forget,
            snapshots=snapshots,
        )

    g = torch.Generator().manual_seed(config.seed)
    # Each process: its slice of the same global batches (no padded or short last batch).
    world, rank = accelerator.num_processes, accelerator.process_index
    forget_it = sharded_batches(
        forget_feats, config.batch_size, world, rank, collate, g, accelerator.device, "forget"
    )
    retain_it = (
        sharded_batches(
            retain_feats, config.retain_batch_size, world, rank, collate, g, accelerator.device, "retain"
        )
        if retain_feats
        else None
    )
    # The fused kernel is 3x faster than the per-tensor loop on CPU; DeepSpeed/FSDP bring their own.
    fused = accelerator.distributed_type in (
        DistributedType.NO,
        DistributedType.MULTI_GPU,
        DistributedType.MULTI_CPU,
    )
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=fused,
    )
    model, opt = accelerator.prepare(model, opt)
    raw = accelerator.unwrap_model(model)
    # Read after prepare: FSDP2 swaps in DTensor shards, which the optimizer and clipping must see.
    params = [p for p in model.parameters() if p.requires_grad]
    state = TrainState(model, opt, raw)
    info = describe_engine(accelerator, model, state.share())
    accelerator.print(engine_line(info))
    if accelerator.is_main_process:
        check_engine(info)  # warns when FSDP / ZeRO runs but nothing is sharded
    if engine is not None:
        engine.update(info)
    robust = RobustStep.from_config(config, params, raw)
    attach_ref = functools.partial(attach_reference, method.needs_ref, ref_cache, ref_copy, raw)
    guard = None
    if config.divergence_guard and not config.plain and retain:  # stop before a collapse
        guard = DivergenceGuard(retain, tokenizer, config, accelerator.device, accelerator.print, snapshots)
        guard.start_run(model, state)
    # Resuming: the checkpoint's weights, optimizer, stop/guard state and RNG; batches replayed.
    start = ckpt.resume(raw, state, g, (forget_it, retain_it), stop, guard, history, snapshots)
    tracker.watch(opt, stop, guard)

    model.train()
    bar = tqdm(
        range(start, config.max_steps),
        initial=start,
        total=config.max_steps,
        desc=f"unlearn[{config.method}]",
        disable=None if accelerator.is_main_process else True,
    )
    # Per-step numbers stay on the device and are read at logging steps and at the end: a
    # `.item()` every step would make the host wait for the device each step.
    pending: list[dict] = []
    sync_time = accelerator.device.type == "cuda" and history is not None
    step = start - 1
    for step in bar:
        t0 = time.perf_counter()
        fb = next(forget_it)
        idx = fb.pop("idx")
        rb = None
        if retain_it is not None:
            rb = next(retain_it)
            rb.pop("idx")
        if (
            stop is not None
            and stop.statistic == "text_min_k"
            and check_stop(stop, step, raw, state, state.base)
        ):
            report_stop(accelerator, stop, step, history)
            break
        # One forward over forget + retain rows: fewer, larger matmuls than two calls.
        n_f = fb["input_ids"].shape[0]
        if rb is not None and not PACK_FORGET_RETAIN:
            tok_logp, tok_mask = token_logprobs(model, fb)
            retain_scores = sequence_scores(model, rb)
            batch = {"attention_mask": torch.cat([fb["attention_mask"].sum(1), rb["attention_mask"].sum(1)])}
        else:
            batch = concat_batches(fb, rb, collate.pad_token_id) if rb is not None else fb
            tok_logp, tok_mask = token_logprobs(model, batch)
            retain_scores = scores_from_tokens(tok_logp[n_f:], tok_mask[n_f:]) if rb is not None else None
            tok_logp, tok_mask = tok_logp[:n_f], tok_mask[:n_f]
        scores = scores_from_tokens(tok_logp, tok_mask)
        if stop is not None and stop.statistic != "text_min_k":
            values = stop.per_example(tok_logp, tok_mask)
            stop.update(accelerator.gather(idx), accelerator.gather(values))
            if check_stop(stop, step, raw, state, state.base):
                report_stop(accelerator, stop, step, history)
                break
        scores = attach_ref(scores, fb, idx)
        loss = method_run.loss(scores, retain_scores, model, raw, fb, idx, rb)
        repair = stop is not None and stop.repairing and retain_scores is not None
        if repair:  # forgotten, but other people's values past the bound: the retain term alone
            loss = retain_scores.nll.mean()
        elif stop is not None and stop.retain_boost and retain_scores is not None:  # still forgetting
            loss = loss + stop.retain_boost * retain_scores.nll.mean()
        if robust is None or repair:
            accelerator.backward(loss)
        else:  # remedies (genforget.lm.remedies.robust): forget passes at moved weights
            forget_loss = functools.partial(
                forget_loss_again, method_run, model, raw, attach_ref, fb, idx, scores
            )
            forget_nll = functools.partial(forget_nll_at, model, fb)
            robust.backward(accelerator.backward, loss, forget_loss, forget_nll)
        if config.max_grad_norm > 0:  # DeepSpeed clips inside its step (configure_engine set the norm)
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sync_time:
            torch.cuda.synchronize()
        row = {
            "step": step,
            "loss": loss.detach(),
            "forget_nll": scores.nll.detach().mean(),
            "seconds": time.perf_counter() - t0,
            "tokens": batch["attention_mask"].sum(),
        }
        if tracker.on and retain_scores is not None:
            row["retain_nll"] = retain_scores.nll.detach().mean()
        pending.append(row)
        if (step + 1) % config.logging_steps == 0 or step + 1 == config.max_steps:
            rows = flush_history(pending, history, accelerator, tracker)
            bar.set_postfix(loss=f"{rows[-1]['loss']:.3f}", forget_nll=f"{rows[-1]['forget_nll']:.2f}")
        if guard is not None and guard.check(step + 1, model, state):
            break
        if ckpt.due(step + 1):  # a resumable checkpoint after step + 1 steps (--save_every)
            flush_history(pending, history, accelerator, tracker)
            ckpt.save(step + 1)
    flush_history(pending, history, accelerator, tracker)
    if stop is not None:  # ended by max_steps or the guard: past the collateral bound, step back
        settle(stop, step + 1, raw, state)
    if history is not None and guard is not None:
        history.extend(guard.events)  # a "diverged" row when the guard stopped the run
    if history is not None and stop is not None:
        add_calibration_trace(history, stop)
    ckpt.finish()  # deletes the checkpoints (they hold the forget set) unless keep_checkpoints
    method_run.close()
    model.eval()
    result = accelerator.unwrap_model(model)
    events = run_events(stop, guard, config.max_steps)
    if config.undo_alpha > 0:
        from genforget.lm.remedies.undo import undo

        # Every process runs the same seeded distillation on the same data: no sync needed.
        result, record = undo(
            result,
            tokenizer,
            retain,
            config.undo_alpha,
            config.undo_steps,
            config.undo_learning_rate,
            config.undo_batch_size,
            max_length=config.max_length,
            seed=config.seed,
            forget=forget,
            mask_ratio=config.undo_mask_ratio,
            nll_weight=config.undo_nll_weight,
            teacher=teacher,
            mask_unit=config.undo_mask_unit,
        )
        if history is not None:
            history.append(dict(record, step=config.max_steps, stage="undo"))
        events.append(
            f"UNDO: noised {config.undo_alpha:g} toward init, distilled the {config.undo_teacher} model "
            f"{config.undo_steps} steps"
        )
    # The prepared (possibly sharded) model runs the measuring forwards; UNDO's student is new.
    finish_run(
        probe, result if config.undo_alpha > 0 else model, events, accelerator, outcome, tracker, step + 1
    )
    return result
