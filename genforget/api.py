"""The public Python API: unlearn, evaluate and load models inside any pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from genforget.config import UnlearnConfig, make_config
from genforget.data.loaders import as_examples
from genforget.lm.outcome import Outcome
from genforget.lm.trainer import check_tokenizer_matches, unlearn_lm
from genforget.lm.vocab import fit_embedding_to_pad


@dataclass
class UnlearnResult:
    """What :func:`unlearn` returns with ``return_history=True``.

    ``history``: one dict per step (``step``, ``loss``, ``forget_nll``, ``seconds``, ``tokens``;
    ``calibration_forget`` / ``calibration_unseen`` at calibrated-stop checks; a final
    ``stopped`` row when the stop fired), trl's ``log_history`` shape.
    ``outcome``: forget and retain figures before and after, and the status (``forgotten``,
    ``partial`` or ``unchanged``) with its reason (:class:`genforget.lm.outcome.Outcome`).
    """

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    outcome: Outcome | None = None

    @property
    def stopped_at(self) -> int | None:
        """The step the calibrated stop fired at, or None when training ran to ``max_steps``."""
        return next((r["step"] for r in self.history if r.get("stopped")), None)


def unlearn(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    forget: Any,
    retain: Any = None,
    method: str = "npo",
    calibration: Any = None,
    accelerator: Any = None,
    return_history: bool = False,
    chat_template: str | None = None,
    **config: Any,
) -> torch.nn.Module | UnlearnResult:
    """Make ``model`` forget ``forget`` while keeping ``retain``; returns the unlearned model.

    ``forget``/``retain``: lists of examples (``{"text", "spans"}``, ``{"prompt", "target"}``,
    ``{"question", "answer"}``, chats ``{"messages": [...]}`` or plain strings), a
    ``datasets.Dataset`` (one split of a ``DatasetDict``; a ``messages`` column included), or a
    string: a JSONL/parquet/CSV path, a ``save_to_disk`` dir (``<dir>:<split>``), a hub id
    ``<name>:<split>`` (:func:`genforget.data.loaders.load_data_spec`; docs/datasets.md); likewise
    ``calibration``. Chats are rendered with
    the tokenizer's chat template, or ``chat_template`` (Jinja text or a file path), and their
    assistant turns are the targets (:mod:`genforget.lm.chat`).
    ``plain=True``: exactly ``max_steps`` steps, no calibrated stop, collateral watch or
    divergence guard (benchmarks); it takes no ``calibration`` set.
    ``config``: any :class:`~genforget.config.UnlearnConfig` field (``learning_rate``,
    ``max_steps``, ``use_lora``, ``beta`` ...). With ``use_lora=True`` a ``PeftModel`` is returned
    and the base weights are untouched; otherwise ``model`` is trained in place.
    ``calibration``: examples like ``forget`` that the model never saw; training then stops as
    soon as the forget set is no more likely than they are (neither under- nor over-forgotten).
    Left out (None), it is made from ``forget`` itself: every target replaced by random
    characters of the same kind (:mod:`genforget.lm.twins`), and retain texts holding strings
    shaped like the forget targets (other people's phone numbers, emails, IDs) are watched too:
    when more than a tenth of those the model could reproduce stop being reproduced, training
    backs off (last good weights, half the learning rate) and goes on, at most three times, then
    stops with the last good weights (collateral damage). ``False`` turns both off.
    ``return_history``: return an :class:`UnlearnResult` (model, per-step history, outcome) instead.

    Every call ends with an outcome on the sets given: greedy extraction and NLL of the forget
    targets and of the retain side, before and after, and a status. ``partial`` or ``unchanged``
    is printed and raised as a :class:`genforget.OutcomeWarning` (also with
    ``return_history=False``).
    """
    from genforget.lm.chat import load_chat_template, render_examples
    from genforget.lm.twins import collateral_examples, shape_twins

    if config.get("plain"):
        if calibration is not None and calibration is not False:
            raise ValueError("plain=True runs exactly max_steps steps: it takes no calibration set")
        calibration = False
    if calibration is None:
        # Few forget examples move fast: check (and keep the last good weights) every step.
        config = {"calibration_every": 1, **config}
    cfg = make_config(UnlearnConfig, {"method": method, **config})
    template = load_chat_template(chat_template)

    def examples(data: Any, name: str) -> list[dict]:
        return render_examples(as_examples(data, name), tokenizer, template)

    forget_ex, retain_ex = examples(forget, "forget"), examples(retain, "retain")
    if calibration is None:
        calib = shape_twins(forget_ex, cfg.seed)
    else:
        calib = [] if calibration is False else examples(calibration, "calibration")
    # Only with twins made here: a caller's own calibration set keeps its own stop rule (NPO on a
    # whole forget set passes through a transient retain disruption that its retain term repairs).
    collateral = collateral_examples(forget_ex, retain_ex) if calibration is None and calib else []
    history: list[dict] = []
    outcome: dict = {}
    out = unlearn_lm(
        model,
        tokenizer,
        forget_ex,
        retain_ex,
        cfg,
        accelerator,
        calibration=calib,
        history=history,
        collateral=collateral,
        outcome=outcome,
    )
    return UnlearnResult(out, history, Outcome.from_dict(outcome)) if return_history else out


def load_model(
    path: str | Path,
    base_model: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    load_in_4bit: bool = False,
    bnb_4bit_quant_type: str = "nf4",
    bnb_4bit_compute_dtype: str = "auto",
    bnb_4bit_use_double_quant: bool = True,
    **kwargs: Any,
) -> tuple[torch.nn.Module, Any]:
    """Load ``(model, tokenizer)`` from a ``save_pretrained`` dir, a PEFT adapter dir (its base
    is read from ``adapter_config.json`` unless ``base_model`` is given) or a hub id.

    Safe by default: weights load only from safetensors (a pickled ``pytorch_model.bin`` or
    adapter ``.bin`` is refused with a ``ValueError`` unless ``allow_pickle``), and code shipped
    with a model is not run unless ``trust_remote_code``.

    ``load_in_4bit``: the base in 4 bits for QLoRA (``unlearn(..., use_lora=True)``), with
    transformers' ``BitsAndBytesConfig`` options ``bnb_4bit_quant_type`` (nf4 | fp4),
    ``bnb_4bit_compute_dtype`` (auto = bfloat16 on a GPU that has it, else float32; float32 |
    bfloat16 | float16) and ``bnb_4bit_use_double_quant``; a ``quantization_config`` of one's own
    can be passed instead. A tokenizer without a pad token is used as it is (batches are padded
    with EOS; see :mod:`genforget.lm.specials`).
    """
    from genforget.io import check_safe_weights
    from genforget.lm.quant import bnb_4bit_config, keep_4bit_trainable

    path_s = str(path)
    adapter_cfg = Path(path_s) / "adapter_config.json"
    if Path(path_s).exists() and not Path(path_s).is_dir():
        raise ValueError(f"{path_s} is a file; expected a model directory")
    if not Path(path_s).exists() and (path_s.startswith((".", "/")) or path_s.count("/") > 1):
        raise FileNotFoundError(f"model directory not found: {path_s}")
    if (Path(path_s) / "model_index.json").is_file() or (Path(path_s) / "unet" / "config.json").is_file():
        raise ValueError(
            f"{path_s} is a diffusion model (unet/ or model_index.json), not a causal LM; "
            "use genforget unlearn-diffusion for it"
        )
    safe = {"use_safetensors": None if allow_pickle else True, "trust_remote_code": trust_remote_code}
    kwargs = {**safe, **kwargs}
    if load_in_4bit:
        if "quantization_config" in kwargs:
            raise ValueError("give load_in_4bit or a quantization_config, not both")
        kwargs["quantization_config"] = bnb_4bit_config(
            bnb_4bit_quant_type, bnb_4bit_compute_dtype, bnb_4bit_use_double_quant
        )
        if not torch.cuda.is_available():
            kwargs.setdefault("device_map", {"": "cpu"})
    try:
        check_safe_weights(path_s, allow_pickle)
        if adapter_cfg.is_file():
            from peft import PeftModel

            base = base_model or json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
            check_safe_weights(base, allow_pickle, what="the adapter's base model")
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, **kwargs), path_s)
        else:
            model = AutoModelForCausalLM.from_pretrained(path_s, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path_s, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise OSError(
            f"could not load a model from {path_s!r}: not a model dir here and not loadable from the hub ({e})"
        ) from e
    fit_embedding_to_pad(model, tokenizer)  # a pad token among extra special tokens: rows added, said
    check_tokenizer_matches(model, tokenizer)
    keep_4bit_trainable(model)  # no-op without 4-bit layers; see genforget.lm.quant
    return model, tokenizer
