"""Dataclass configs readable from YAML and overridable on the command line.

:func:`genforget.cli.args.parse_config` ``((ScriptArgs, UnlearnConfig))`` reads ``--config x.yaml`` and then ``--field value``
flags; every YAML key must be a field of one of the dataclasses (a typo is an error with a
"did you mean", exit code 2), in the spirit of ``HfArgumentParser`` and trl's ``TrlParser``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from genforget.common_args import arg
from genforget.methods.registry import did_you_mean

# What the calibrated stop can compare (genforget.lm.safeguards.stopping).
STATISTICS = ("text_min_k", "min_k", "nll")


@dataclass
class UnlearnConfig:
    """How to unlearn: the fields every method shares. Every field can be set in YAML or as
    ``--name value``.

    A method's own hyperparameters live in its own dataclass, a subclass of this one, in the
    method's file (``RMUConfig`` in ``genforget/methods/rmu.py``), named by its class's
    ``config_class``. ``UnlearnConfig(method="rmu", rmu_layer=3)`` builds that class: the call
    site never names it. A field of another method is refused by name (``beta`` is NPO's, not
    RMU's), except when :func:`dataclasses.replace` switches the method, which drops the old
    method's fields (how one config is reused across methods).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> UnlearnConfig:
        defaults = getattr(cls, "DEFAULTS", None)
        if args:  # positional fields: the class asked for, as dataclasses build it
            return super().__new__(cls)
        method = kwargs.get("method", cls.__dataclass_fields__["method"].default)
        target = method_config_class(method)
        if cls is target and not defaults:
            return super().__new__(cls)  # the class asked for has the method's fields
        names = {f.name for f in dataclasses.fields(target)}
        asked = {f.name for f in dataclasses.fields(cls)}
        for key in kwargs:
            if key not in names and key not in asked:
                raise ValueError(foreign_field_message(key, method, names))
        values = {k: v for k, v in (defaults or {}).items() if k in names}
        values.update({k: v for k, v in kwargs.items() if k in names})
        obj = super().__new__(target)
        if not issubclass(target, cls):
            obj.__init__(**values)  # Python calls __init__ itself only on an instance of cls
        return obj

    method: str = arg(
        "npo",
        "registered method: grad_ascent, grad_diff, npo, simnpo, idk_nll, idk_dpo, rmu, whp, "
        "wga, newton; diffusion: esd, salun",
    )
    learning_rate: float = arg(1e-3, "AdamW learning rate")
    max_steps: int = arg(60, "optimizer steps")
    batch_size: int = arg(8, "forget examples per step (per process)")
    retain_batch_size: int = arg(16, "retain examples per step (per process)")
    retain_weight: float = arg(1.0, "weight of the retain NLL term")
    weight_decay: float = arg(0.0, "AdamW weight decay")
    max_grad_norm: float = arg(1.0, "gradient clipping norm (0 = off)")
    reference: str = arg(
        "auto",
        "frozen reference of NPO-style methods: auto (cached log-probs; LoRA: adapter "
        "off) or copy (a deep-copied model run every step: the naive baseline)",
    )
    gradient_checkpointing: bool = arg(
        False, "recompute activations during backward: far less memory, ~30 % more time"
    )
    use_lora: bool = arg(False, "train a LoRA adapter; reference = adapter off")
    lora_r: int = arg(8, "LoRA rank")
    lora_alpha: int = arg(16, "LoRA alpha")
    lora_dropout: float = arg(0.0, "LoRA dropout")
    use_rslora: bool = arg(
        True,
        "causal LMs: rank-stabilised LoRA scale lora_alpha/sqrt(lora_r) (Kalajdzievski 2023) "
        "instead of lora_alpha/lora_r, so an adapter learns at a rate near full fine-tuning's at the "
        "same learning_rate; diffusion adapters keep lora_alpha/lora_r (diffusers' LoRA format)",
    )
    lora_target_modules: list[str] = arg(
        factory=list,
        help="module names LoRA wraps (empty: every linear layer of the decoder blocks, fused qkv and "
        "MoE experts included, chosen per model and logged; diffusion: to_q to_k to_v to_out.0)",
    )
    layer_pattern: str = arg(
        "",
        "dotted name of the ModuleList holding the decoder blocks (model.layers, transformer.h, "
        "...): where LoRA targets, rmu and whp look; empty: found from the model's block class",
    )
    calibration_every: int = arg(5, "steps between calibrated-stop checks (when calibration data is given)")
    calibration_statistic: str = arg(
        "text_min_k",
        "what calibrated stop compares: text_min_k (min-k % of whole texts, what a "
        "membership attack reads), min_k or nll (of the loss's target tokens)",
    )
    collateral_max_loss: float = arg(
        0.1,
        "collateral watch (genforget.unlearn without calibration data): the share of other "
        "people's same-shaped values (greedy extraction from the retain texts) that may be lost "
        "before training backs off (last good weights, half the learning rate)",
    )
    max_length: int = arg(256, "truncate examples to this many tokens")
    logging_steps: int = arg(10, "steps between progress-bar updates (each reads the device once)")
    seed: int = arg(0, "random seed")
    report_to: str = arg(
        "none",
        "experiment trackers (accelerate's): none, tensorboard, wandb, trackio, all, or several "
        "comma-separated; per-step loss, forget/retain NLL, learning rate, stop and guard state, outcome",
    )
    logging_dir: str = arg(
        "", "where local trackers (tensorboard) write (empty: genforget_logs; CLI: <output_dir>.logs)"
    )
    plain: bool = arg(
        False,
        "a fixed-step run for benchmarks: exactly max_steps steps, no calibrated stop, no "
        "collateral watch, no divergence guard (overrides those settings)",
    )
    divergence_guard: bool = arg(
        True, "stop and restore the last good state when retain perplexity rises past divergence_ratio x"
    )
    divergence_ratio: float = field(
        # 10x: a collapse (gradient ascent reaches 10^4x in 2 steps), not the transient rise of a
        # healthy NPO run (6.7x on the tiny victim before its retain term pulls it back).
        default=10.0,
        metadata={"help": "divergence guard: allowed retain perplexity / its value before training"},
    )
    divergence_every: int = arg(5, "divergence guard: steps between checks")
    sam_rho: float = arg(
        0.0,
        "remedy: sharpness-aware forget loss, taken at the worst point within this L2 radius "
        "(Fan et al. 2025, arXiv:2502.05374; 0 = off; ~2x step cost)",
    )
    quant_aware_weight: float = arg(
        0.0,
        "remedy: weight of the forget loss taken through NF4 rounding (straight-through), so "
        "forgetting holds after 4-bit quantisation (needs bitsandbytes; 0 = off)",
    )
    relearn_aware_steps: int = arg(
        0,
        "remedy: also take the forget loss after this many simulated relearning steps on the "
        "forget batch (meta-unlearning, first-order; 0 = off; ~(2 + steps)x step cost)",
    )
    relearn_aware_lr: float = arg(1e-3, "relearn-aware remedy: the simulated attacker's (sign-)step size")
    relearn_aware_weight: float = arg(1.0, "relearn-aware remedy: weight of the forget loss after relearning")
    undo_alpha: float = arg(
        0.0,
        "remedy UNDO (Lee et al. 2025, arXiv:2506.06278): after unlearning, move the weights "
        "this far toward fresh initialisation, then distil the unlearned model back on retain "
        "data (0 = off; full-parameter only)",
    )
    undo_mask_ratio: float = arg(
        1.0,
        "UNDO: share of each weight tensor that is noised (1 = all, the paper's; below 1: the "
        "entries most salient to the forget set relative to the retain set, SalUn/SSD-style)",
    )
    undo_mask_unit: str = arg(
        "entry",
        "UNDO: what undo_mask_ratio ranks: entry (single weights) or tensor (whole weight "
        "tensors, most forget-salient first: a reset of the layers the forget gradient concentrates in)",
    )
    undo_steps: int = arg(150, "UNDO: distillation steps")
    undo_nll_weight: float = arg(
        0.0,
        "UNDO: weight of an NLL term on the retain texts added to the distillation KL (0 = "
        "the paper's pure distillation; memorised retain facts come back sooner with it)",
    )
    undo_teacher: str = arg(
        "unlearned",
        "UNDO: the model distilled into the noised weights on the retain texts: unlearned (the "
        "paper's) or victim (the model as given, before unlearning: it knows the retained data best "
        "and the retain texts carry none of the forgotten; holds a second copy of the model)",
    )
    undo_learning_rate: float = arg(3e-3, "UNDO: distillation learning rate")
    undo_batch_size: int = arg(32, "UNDO: retain texts per distillation step")
    save_every: int = arg(
        0,
        "LM only: write a resumable checkpoint (weights or adapter, optimizer, RNG, data position, "
        "stop and guard state) into checkpoint_dir every N steps; 0 = off",
    )
    resume_from: str = arg(
        "",
        "LM only: continue from a checkpoint-NNNNNN dir, or auto (the latest in checkpoint_dir; "
        "none yet: start fresh); the config, data and model must be the checkpoint's",
    )
    checkpoint_dir: str = arg("", "where checkpoints go (CLI default: <output_dir>.checkpoints)")
    keep_checkpoints: bool = arg(
        False,
        "keep the checkpoints after a successful run; by default they are deleted, because "
        "they are partially-unlearned weights that still hold the forget set",
    )

    def __reduce_ex__(self, protocol: Any) -> tuple:
        # copy and pickle rebuild the same class from its fields, without the method dispatch
        return (_restore, (type(self), dict(self.__dict__)))

    def __post_init__(self) -> None:
        method_config_class(self.method)  # unknown name -> ValueError with a "did you mean"
        if not isinstance(self, method_config_class(self.method)):
            raise ValueError(
                f"{type(self).__name__} cannot hold method {self.method!r}, whose fields are in "
                f"{method_config_class(self.method).__name__}: build it with UnlearnConfig(method=...)"
            )
        for name in ("learning_rate", "undo_learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)})")
        for name in (
            "max_steps",
            "batch_size",
            "retain_batch_size",
            "lora_r",
            "max_length",
            "calibration_every",
            "logging_steps",
            "divergence_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.calibration_statistic not in STATISTICS:
            raise ValueError(
                f"calibration_statistic must be one of {STATISTICS} (got {self.calibration_statistic!r})"
            )
        from genforget.lm.tracking import tracker_names

        tracker_names(self.report_to)  # a wrong name -> ValueError naming the choices
        if self.reference not in ("auto", "copy"):
            raise ValueError(f"reference must be 'auto' or 'copy' (got {self.reference!r})")
        non_negative = (
            "retain_weight",
            "sam_rho",
            "quant_aware_weight",
            "undo_nll_weight",
            "relearn_aware_steps",
            "relearn_aware_lr",
            "relearn_aware_weight",
        )
        non_negative += ("weight_decay", "max_grad_norm", "lora_alpha")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.save_every < 0:
            raise ValueError(f"save_every must be >= 0 (0 = no checkpoints; got {self.save_every})")
        if self.divergence_ratio <= 1:
            raise ValueError(f"divergence_ratio must be > 1 (got {self.divergence_ratio})")
        if not 0 <= self.collateral_max_loss <= 1:
            raise ValueError(f"collateral_max_loss must be in [0, 1] (got {self.collateral_max_loss})")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if not 0 <= self.undo_alpha <= 1:
            raise ValueError(f"undo_alpha must be in [0, 1] (got {self.undo_alpha})")
        if self.undo_alpha > 0 and self.use_lora:
            raise ValueError(
                "undo_alpha needs full-parameter unlearning: UNDO re-noises the base weights that a "
                "LoRA run keeps frozen; set use_lora: false or undo_alpha: 0"
            )
        if self.undo_alpha > 0 and min(self.undo_steps, self.undo_batch_size) < 1:
            raise ValueError("undo_steps and undo_batch_size must be >= 1 when undo_alpha > 0")
        if self.undo_mask_unit not in ("entry", "tensor"):
            raise ValueError(f"undo_mask_unit must be 'entry' or 'tensor' (got {self.undo_mask_unit!r})")
        if self.undo_teacher not in ("unlearned", "victim"):
            raise ValueError(f"undo_teacher must be 'unlearned' or 'victim' (got {self.undo_teacher!r})")
        if not 0 < self.undo_mask_ratio <= 1:
            raise ValueError(f"undo_mask_ratio must be in (0, 1] (got {self.undo_mask_ratio})")


def _restore(cls: type, state: dict) -> Any:
    obj = object.__new__(cls)
    obj.__dict__.update(state)
    return obj


def method_config_class(method: str) -> type[UnlearnConfig]:
    """The config dataclass of a registered method (its class's ``config_class``; the shared
    :class:`UnlearnConfig` when it has no hyperparameter of its own)."""
    from genforget.methods.registry import get_method

    return getattr(get_method(method), "config_class", None) or UnlearnConfig


def method_field_owners() -> dict[str, list[str]]:
    """``field -> methods whose config has it``, for every field not shared by all methods."""
    from genforget.methods.registry import METHODS

    shared = {f.name for f in dataclasses.fields(UnlearnConfig)}
    owners: dict[str, list[str]] = {}
    declared: dict[str, str] = {}  # field -> the config class that declares it (NPOConfig: beta)
    for name in sorted(METHODS):
        cls = method_config_class(name)
        for f in dataclasses.fields(cls):
            if f.name not in shared:
                owners.setdefault(f.name, []).append(name)
        for f in cls.__dict__.get("__annotations__", {}):
            declared[f] = cls.__name__.lower()
    for f, names in owners.items():  # the method the declaring class is named after first
        names.sort(key=lambda n: (declared.get(f) != n.replace("_", "") + "config", n))
    return owners


def foreign_field_message(key: str, method: str, names: set[str] | list[str]) -> str:
    """Why ``key`` is refused for ``method``: another method's field, or a typo."""
    owners = method_field_owners().get(key)
    if owners:
        return (
            f"{key!r} is a field of {', '.join(owners)}, not of {method!r}: drop it, or set method to "
            f"{owners[0]!r}"
        )
    return f"unknown field {key!r} for method {method!r}.{did_you_mean(key, sorted(names))}"


def settings_for(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` restricted to ``method``'s config: one settings mapping for a sweep over methods
    (``{"beta": 0.1, "rmu_alpha": 10}`` gives npo its beta and rmu its alpha). Another method's
    field is dropped; a key no method has is still an error, with a "did you mean"."""
    names = {f.name for f in dataclasses.fields(method_config_class(method))}
    owners = method_field_owners()
    for key in values:
        if key not in names and key not in owners:
            raise ValueError(foreign_field_message(key, method, names))
    return {k: v for k, v in values.items() if k in names}


def config_fields(cls: type, method: str | None = None) -> list[dataclasses.Field]:
    """The fields ``cls`` takes: for an :class:`UnlearnConfig` (sub)class those of ``method``'s
    config (default: the class's default method)."""
    if isinstance(cls, type) and issubclass(cls, UnlearnConfig):
        method = method or cls.__dataclass_fields__["method"].default
        return list(dataclasses.fields(method_config_class(method)))
    return list(dataclasses.fields(cls))


def make_config(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` with unknown keys reported by name, with a "did you mean"."""
    names = [f.name for f in config_fields(cls, values.get("method"))]
    for key in values:
        if key not in names:
            if issubclass(cls, UnlearnConfig):
                method = values.get("method") or cls.__dataclass_fields__["method"].default
                raise ValueError(foreign_field_message(key, method, names))
            raise ValueError(f"unknown {cls.__name__} field {key!r}.{did_you_mean(key, names)}")
    return cls(**values)


class UsageError(Exception):
    """A bad command line or config file: recipes print it and exit with code 2."""
