"""Batches and step records of the LM loop: forget + retain rows packed into one forward, the
frozen reference's log-probs cached once, and the per-step numbers read off the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from genforget.adapters import reference_mode
from genforget.lm.data import IGNORE, Collator
from genforget.lm.scoring import scores_from_tokens, sequence_scores, token_logprobs

if TYPE_CHECKING:
    from genforget.lm.tracking import RunTracker


def concat_batches(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], pad_id: int) -> dict:
    """Rows of ``a`` then ``b`` (``input_ids``/``labels``/``attention_mask``), right-padded to one
    length: forget and retain examples go through the model in one forward."""
    n = max(a["input_ids"].shape[1], b["input_ids"].shape[1])
    fill = {"input_ids": pad_id, "labels": IGNORE, "attention_mask": 0}
    return {
        k: torch.cat([F.pad(x[k], (0, n - x[k].shape[1]), value=fill[k]) for x in (a, b)])
        for k in ("input_ids", "labels", "attention_mask")
    }


@torch.no_grad()
def cached_reference_logp(
    model: torch.nn.Module, features: list[dict], collate: Collator, batch_size: int = 32
) -> torch.Tensor:
    """``logp`` of every forget example under the model as it is now, computed once.

    LM inputs are deterministic, so the frozen reference's scores never change during
    unlearning: caching them removes the reference forward pass and the reference model.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.empty(len(features))
    for i in range(0, len(features), batch_size):
        batch = {k: v.to(device) for k, v in collate(features[i : i + batch_size]).items()}
        out[i : i + batch_size] = sequence_scores(model, batch).logp.float().cpu()
    model.train(was_training)
    return out


def flush_history(
    pending: list[dict],
    history: list[dict] | None,
    accelerator: Accelerator | None = None,
    tracker: RunTracker | None = None,
) -> list[dict]:
    """Read the pending steps' device numbers (one sync) into ``history``; empties ``pending``.

    With several processes, ``loss`` and ``forget_nll`` are averaged over them and ``tokens``
    summed (one collective): the rows then describe the global batch, as one process would.
    ``tracker``: the rows also go to the run's experiment trackers (``report_to``).
    """
    if pending and accelerator is not None and accelerator.num_processes > 1:
        keys = ("loss", "forget_nll", "tokens") + (("retain_nll",) if "retain_nll" in pending[0] else ())
        vals = torch.stack([torch.stack([torch.as_tensor(r[k]).float() for k in keys]) for r in pending])
        vals = accelerator.reduce(vals.to(accelerator.device), "sum").cpu()
        vals[:, :2] /= accelerator.num_processes
        vals[:, 3:] /= accelerator.num_processes
        pending[:] = [dict(r, **dict(zip(keys, v, strict=True))) for r, v in zip(pending, vals, strict=True)]
    rows = [{k: v.item() if torch.is_tensor(v) else v for k, v in row.items()} for row in pending]
    rows = [dict(r, tokens=int(r["tokens"])) for r in rows]
    if history is not None:
        history.extend(rows)
    if tracker is not None:
        tracker.log_rows(rows)
    pending.clear()
    return rows


def attach_reference(needs_ref: bool, ref_cache, ref_copy, raw, scores, fb: dict, idx: torch.Tensor):
    """``scores`` with ``ref_logp`` of the frozen reference: cached log-probs, the naive copy, or
    (LoRA) the model with its adapter off."""
    if needs_ref:
        if ref_cache is not None:
            scores.ref_logp = ref_cache[idx]
        elif ref_copy is not None:
            with torch.no_grad():
                scores.ref_logp = sequence_scores(ref_copy, fb).logp
        else:
            with reference_mode(raw):
                scores.ref_logp = sequence_scores(raw, fb).logp
    return scores


def forget_loss_again(method_run, model, raw, attach_ref, fb: dict, idx: torch.Tensor, scores, fresh: bool):
    """The method's loss without its retain term: from this step's ``scores``, or from a new
    forward (``fresh``) at the weights as they are when called."""
    if fresh:
        scores = attach_ref(scores_from_tokens(*token_logprobs(model, fb)), fb, idx)
    return method_run.loss(scores, None, model, raw, fb, idx, None)


def forget_nll_at(model, fb: dict) -> torch.Tensor:
    """The forget batch's mean NLL over its loss tokens at the weights as they are when called
    (the relearn-aware remedy's simulated attacker)."""
    return sequence_scores(model, fb).nll.mean()
