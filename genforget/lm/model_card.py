"""The model card of a saved unlearned causal LM or LoRA adapter (``README.md``, Hub metadata).

Written by :func:`genforget.adapters.save_model` when it is given the run's record, and by
:class:`~genforget.lm.hf_trainer.UnlearningTrainer.save_model`. The card states the method, its
config, the forget / retain sets as counts and SHA-256 fingerprints only (never text: the card is
published next to the weights), the outcome with its before/after figures and the rules behind the
status, the evaluation metrics given and, for a deletion request, the certificate's id and hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genforget.cards import write_model_card
from genforget.peft_model import is_peft_model

# Keys of a data record that may go on a card: counts and hashes, nothing else.
_DATA_KEYS = ("forget_examples", "forget_sha256", "retain_examples", "retain_sha256")
_LOCAL_PATHS = ("logging_dir", "checkpoint_dir", "resume_from")


def base_model_name(model: torch.nn.Module) -> str | None:
    """What the model was loaded from: the adapter's base for a ``PeftModel``, else ``_name_or_path``."""
    if is_peft_model(model):
        cfg = model.peft_config.get(model.active_adapter)
        name = getattr(cfg, "base_model_name_or_path", None)
        if name:
            return str(name)
        model = model.get_base_model()
    return getattr(getattr(model, "config", None), "_name_or_path", None) or None


def _figures(outcome: dict) -> dict:
    keep = ("extraction", "nll", "accuracy", "spans")
    return {
        k: {f: round(v[f], 4) if isinstance(v[f], float) else v[f] for f in keep if f in v}
        for k, v in outcome.items()
        if isinstance(v, dict) and k.endswith(("_before", "_after"))
    }


def write_lm_card(
    out_dir: str | Path,
    model: torch.nn.Module,
    *,
    config: dict[str, Any],
    data: dict[str, Any],
    outcome: dict | None = None,
    metrics: dict | None = None,
    training: dict | None = None,
    certificate: dict | list[dict] | None = None,
    verification: list[dict] | None = None,
    adapter: bool | None = None,
) -> Path:
    """Write ``out_dir/README.md`` for a saved LM (``adapter``: a PEFT adapter dir; default: the
    model is a ``PeftModel``). ``data``: counts and hashes (other keys are dropped, so no text can
    reach the card); ``outcome``: :meth:`~genforget.lm.outcome.Outcome.to_dict`; ``certificate``:
    ``{"id", "sha256"}`` of a deletion request's certificate (a list: one per request);
    ``verification``: the certificate's figure rows (value, bar, passed)."""
    adapter = is_peft_model(model) if adapter is None else adapter
    method = str(config.get("method", "?"))
    forgotten = {k: data[k] for k in _DATA_KEYS if data.get(k) is not None}
    certs = [certificate] if isinstance(certificate, dict) else list(certificate or [])
    for i, cert in enumerate(certs):
        n = f" {i + 1}" if len(certs) > 1 else ""
        forgotten[f"certificate{n} id"] = cert.get("id")
        forgotten[f"certificate{n} SHA-256"] = cert.get("sha256")
    results: dict[str, Any] = {}
    if verification:
        results["verification"] = verification
    summary = (
        f"This {'LoRA adapter' if adapter else 'model'} was made to forget a set of examples with `{method}`."
    )
    if outcome:
        results["outcome"] = {
            "status": outcome.get("status"),
            "reason": outcome.get("reason"),
            "retain_measured_on": outcome.get("retain_measured_on") or None,
            **_figures(outcome),
        }
        summary += (
            f" Outcome: **{outcome.get('status')}**. Extraction is the share of target spans greedy "
            "decoding reproduces from their prefix; forgotten means forget extraction <= 0.10 after, "
            "with retain extraction and token accuracy within 0.10 of before."
        )
    elif verification:
        summary += " Its verification figures, each with its bar, are under Results."
    else:
        summary += " No outcome was measured for this save."
    if metrics:
        results["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    usage = (
        "from genforget import load_model\n\n"
        f"model, tokenizer = load_model({'this_adapter_dir' if adapter else 'this_model_dir'!r})"
    )
    # Local paths (where logs and checkpoints went) say nothing about the model and may name a user.
    cfg = {k: v for k, v in config.items() if v not in (None, [], "") and k not in _LOCAL_PATHS}
    if training:
        cfg = {"unlearn": cfg, "training": training}
    return write_model_card(
        out_dir,
        title=f"Unlearned with genforget ({method})",
        base_model=base_model_name(model),
        library_name="peft" if adapter else "transformers",
        tags=[method, "lora"] if adapter else [method],
        summary=summary,
        method=method,
        config=cfg,
        forgotten=forgotten,
        results=results or None,
        usage=usage,
    )
