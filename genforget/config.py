"""Dataclass configs readable from YAML and overridable on the command line.

``parse_config((ScriptArgs, UnlearnConfig))`` reads ``--config x.yaml`` and then ``--field value``
flags; every YAML key must be a field of one of the dataclasses (a typo is an error with a
"did you mean", exit code 2), in the spirit of ``HfArgumentParser`` and trl's ``TrlParser``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genforget.methods.registry import did_you_mean


@dataclass
class UnlearnConfig:
    """How to unlearn. Every field can be set in YAML or as ``--name value``."""

    method: str = field(
        default="npo",
        metadata={
            "help": "registered method: grad_ascent, grad_diff, npo, simnpo, idk_nll, idk_dpo, rmu, whp, "
            "wga, newton; diffusion: esd, salun"
        },
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    max_steps: int = field(default=60, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "forget examples per step (per process)"})
    retain_batch_size: int = field(default=16, metadata={"help": "retain examples per step (per process)"})
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain NLL term"})
    beta: float = field(default=0.1, metadata={"help": "NPO/SimNPO/IdK-DPO inverse temperature"})
    gamma: float = field(default=0.0, metadata={"help": "SimNPO margin"})
    esd_eta: float = field(
        default=1.0,
        metadata={"help": "ESD negative-guidance scale: target = uncond - eta * (cond - uncond) (diffusion)"},
    )
    saliency_ratio: float = field(
        default=0.5,
        metadata={
            "help": "SalUn: share of weights (largest forget-loss gradients) that may change (diffusion)"
        },
    )
    rmu_layer: int = field(
        default=-1,
        metadata={
            "help": "RMU: decoder layer whose output is steered (-1: round(7/32 * n_layers), the paper's "
            "depth, at least 1)"
        },
    )
    rmu_c: float = field(
        default=0.0,
        metadata={"help": "RMU: steering coefficient c (0: 5x the frozen mean activation norm at the layer)"},
    )
    rmu_alpha: float = field(default=100.0, metadata={"help": "RMU: weight of the retain activation term"})
    rmu_modules: list[str] = field(
        default_factory=list,
        metadata={
            "help": "RMU: names (ends of module or expert-weight names inside a decoder block) of what trains "
            "in the steered layer and the two before it (empty: the MLP output projection: down_proj, "
            "mlp.c_proj, fc2, dense_4h_to_h, w2 or Mamba's mixer.out_proj)"
        },
    )
    whp_alpha: float = field(
        default=5.0, metadata={"help": "WHP: v_generic = v_base - alpha * ReLU(v_reinforced - v_base)"}
    )
    whp_reinforce_steps: int = field(
        default=20,
        metadata={"help": "WHP: steps of LoRA fine-tuning on the forget set for the reinforced model"},
    )
    wga_beta: float = field(
        default=1.0, metadata={"help": "WGA: forget-token NLL weighted by p(token)^wga_beta (detached)"}
    )
    newton_damping: float = field(
        default=0.1, metadata={"help": "newton: damping lambda added to the retain Hessian (H + lambda I)"}
    )
    newton_cg_iters: int = field(default=10, metadata={"help": "newton: conjugate-gradient iterations"})
    newton_hessian_examples: int = field(
        default=32,
        metadata={"help": "newton: retain examples sampled for the Hessian (0 = all; cost is linear)"},
    )
    newton_n_remaining: int = field(
        default=0, metadata={"help": "newton: size of the remaining training set (0 = the retain set's size)"}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 = off)"})
    reference: str = field(
        default="auto",
        metadata={
            "help": "frozen reference of NPO-style methods: auto (cached log-probs; LoRA: adapter "
            "off) or copy (a deep-copied model run every step: the naive baseline)"
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations during backward: far less memory, ~30 % more time"},
    )
    use_lora: bool = field(default=False, metadata={"help": "train a LoRA adapter; reference = adapter off"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata={
            "help": "module names LoRA wraps (empty: every linear layer of the decoder blocks, fused qkv and "
            "MoE experts included, chosen per model and logged; diffusion: to_q to_k to_v to_out.0)"
        },
    )
    layer_pattern: str = field(
        default="",
        metadata={
            "help": "dotted name of the ModuleList holding the decoder blocks (model.layers, transformer.h, "
            "...): where LoRA targets, rmu and whp look; empty: found from the model's block class"
        },
    )
    calibration_every: int = field(
        default=5, metadata={"help": "steps between calibrated-stop checks (when calibration data is given)"}
    )
    calibration_statistic: str = field(
        default="text_min_k",
        metadata={
            "help": "what calibrated stop compares: text_min_k (min-k % of whole texts, what a "
            "membership attack reads), min_k or nll (of the loss's target tokens)"
        },
    )
    collateral_max_loss: float = field(
        default=0.1,
        metadata={
            "help": "collateral watch (genforget.unlearn without calibration data): the share of other "
            "people's same-shaped values (greedy extraction from the retain texts) that may be lost "
            "before training backs off (last good weights, half the learning rate)"
        },
    )
    max_length: int = field(default=256, metadata={"help": "truncate examples to this many tokens"})
    logging_steps: int = field(
        default=10, metadata={"help": "steps between progress-bar updates (each reads the device once)"}
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    report_to: str = field(
        default="none",
        metadata={
            "help": "experiment trackers (accelerate's): none, tensorboard, wandb, trackio, all, or several "
            "comma-separated; per-step loss, forget/retain NLL, learning rate, stop and guard state, outcome"
        },
    )
    logging_dir: str = field(
        default="",
        metadata={
            "help": "where local trackers (tensorboard) write (empty: genforget_logs; CLI: <output_dir>.logs)"
        },
    )
    plain: bool = field(
        default=False,
        metadata={
            "help": "a fixed-step run for benchmarks: exactly max_steps steps, no calibrated stop, no "
            "collateral watch, no divergence guard (overrides those settings)"
        },
    )
    divergence_guard: bool = field(
        default=True,
        metadata={
            "help": "stop and restore the last good state when retain perplexity rises past divergence_ratio x"
        },
    )
    divergence_ratio: float = field(
        # 10x: a collapse (gradient ascent reaches 10^4x in 2 steps), not the transient rise of a
        # healthy NPO run (6.7x on the tiny victim before its retain term pulls it back).
        default=10.0,
        metadata={"help": "divergence guard: allowed retain perplexity / its value before training"},
    )
    divergence_every: int = field(default=5, metadata={"help": "divergence guard: steps between checks"})
    sam_rho: float = field(
        default=0.0,
        metadata={
            "help": "remedy: sharpness-aware forget loss, taken at the worst point within this L2 radius "
            "(Fan et al. 2025, arXiv:2502.05374; 0 = off; ~2x step cost)"
        },
    )
    quant_aware_weight: float = field(
        default=0.0,
        metadata={
            "help": "remedy: weight of the forget loss taken through NF4 rounding (straight-through), so "
            "forgetting holds after 4-bit quantisation (needs bitsandbytes; 0 = off)"
        },
    )
    undo_alpha: float = field(
        default=0.0,
        metadata={
            "help": "remedy UNDO (Lee et al. 2025, arXiv:2506.06278): after unlearning, move the weights "
            "this far toward fresh initialisation, then distil the unlearned model back on retain "
            "data (0 = off; full-parameter only)"
        },
    )
    undo_mask_ratio: float = field(
        default=1.0,
        metadata={
            "help": "UNDO: share of each weight tensor that is noised (1 = all, the paper's; below 1: the "
            "entries most salient to the forget set relative to the retain set, SalUn/SSD-style)"
        },
    )
    undo_steps: int = field(default=150, metadata={"help": "UNDO: distillation steps"})
    undo_nll_weight: float = field(
        default=0.0,
        metadata={
            "help": "UNDO: weight of an NLL term on the retain texts added to the distillation KL (0 = "
            "the paper's pure distillation; memorised retain facts come back sooner with it)"
        },
    )
    undo_learning_rate: float = field(default=3e-3, metadata={"help": "UNDO: distillation learning rate"})
    undo_batch_size: int = field(default=32, metadata={"help": "UNDO: retain texts per distillation step"})
    save_every: int = field(
        default=0,
        metadata={
            "help": "LM only: write a resumable checkpoint (weights or adapter, optimizer, RNG, data position, "
            "stop and guard state) into checkpoint_dir every N steps; 0 = off"
        },
    )
    resume_from: str = field(
        default="",
        metadata={
            "help": "LM only: continue from a checkpoint-NNNNNN dir, or auto (the latest in checkpoint_dir; "
            "none yet: start fresh); the config, data and model must be the checkpoint's"
        },
    )
    checkpoint_dir: str = field(
        default="", metadata={"help": "where checkpoints go (CLI default: <output_dir>.checkpoints)"}
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "keep the checkpoints after a successful run; by default they are deleted, because "
            "they are partially-unlearned weights that still hold the forget set"
        },
    )

    def __post_init__(self) -> None:
        from genforget.methods.registry import get_method

        get_method(self.method)  # unknown name -> ValueError with a "did you mean"
        for name in ("learning_rate", "beta", "undo_learning_rate"):
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
        from genforget.lm.safeguards.stopping import STATISTICS

        if self.calibration_statistic not in STATISTICS:
            raise ValueError(
                f"calibration_statistic must be one of {STATISTICS} (got {self.calibration_statistic!r})"
            )
        from genforget.lm.tracking import tracker_names

        tracker_names(self.report_to)  # a wrong name -> ValueError naming the choices
        if self.reference not in ("auto", "copy"):
            raise ValueError(f"reference must be 'auto' or 'copy' (got {self.reference!r})")
        if not 0 < self.saliency_ratio <= 1:
            raise ValueError(f"saliency_ratio must be in (0, 1] (got {self.saliency_ratio})")
        if self.rmu_layer < -1:
            raise ValueError(f"rmu_layer must be >= 0, or -1 for auto (got {self.rmu_layer})")
        non_negative = ("rmu_c", "rmu_alpha", "whp_alpha", "whp_reinforce_steps", "wga_beta", "retain_weight")
        non_negative += ("sam_rho", "quant_aware_weight", "undo_nll_weight")
        non_negative += ("weight_decay", "max_grad_norm", "lora_alpha")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if min(self.newton_damping, self.newton_n_remaining, self.newton_hessian_examples) < 0:
            raise ValueError("newton_damping, newton_n_remaining and newton_hessian_examples must be >= 0")
        if self.newton_cg_iters < 1:
            raise ValueError(f"newton_cg_iters must be >= 1 (got {self.newton_cg_iters})")
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
        if not 0 < self.undo_mask_ratio <= 1:
            raise ValueError(f"undo_mask_ratio must be in (0, 1] (got {self.undo_mask_ratio})")


def make_config(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` with unknown keys reported by name, with a "did you mean"."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ValueError(f"unknown {cls.__name__} field {key!r}.{did_you_mean(key, names)}")
    return cls(**values)


class UsageError(Exception):
    """A bad command line or config file: recipes print it and exit with code 2."""


def _arg_type(tp: Any) -> tuple[Any, dict]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if tp is bool:
        return (lambda s: s.lower() in ("1", "true", "yes", "on")), {}
    if origin is list:
        return str, {"nargs": "+"}
    return tp, {}


def parse_config(classes: tuple[type, ...], argv: list[str] | None = None) -> tuple:
    """Build each dataclass from ``--config`` YAML, then command-line overrides.

    Raises :class:`UsageError` naming the bad key or file.
    """
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    yaml_values: dict[str, Any] = {}
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            raise UsageError(f"--config: file not found: {path}")
        try:
            yaml_values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(e, "problem", None) or "syntax error"
            raise UsageError(f"--config {where}: not valid YAML ({problem}); fix that line") from e
        if not isinstance(yaml_values, dict):
            raise UsageError(f"--config {path}: expected a mapping of field: value")
    hints = {cls: typing.get_type_hints(cls) for cls in classes}
    all_names = [f.name for cls in classes for f in dataclasses.fields(cls)]
    for key in yaml_values:
        if key not in all_names:
            raise UsageError(f"{known.config}: unknown key {key!r}.{did_you_mean(key, all_names)}")
    parser = argparse.ArgumentParser(description="genforget recipe", exit_on_error=False)
    parser.add_argument("--config", default=None, help="YAML file whose keys are the fields below")
    for cls in classes:
        group = parser.add_argument_group(cls.__name__)
        for f in dataclasses.fields(cls):
            conv, extra = _arg_type(hints[cls][f.name])
            group.add_argument(
                f"--{f.name}",
                type=conv,
                default=argparse.SUPPRESS,
                help=(f.metadata.get("help") or "").replace("%", "%%"),
                **extra,
            )
    try:
        ns, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise UsageError(str(e)) from e
    if unknown:
        flag = unknown[0].lstrip("-").split("=")[0]
        raise UsageError(f"unknown option {unknown[0]!r}.{did_you_mean(flag, all_names)}")
    cli = vars(ns)
    out = []
    for cls in classes:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in yaml_values.items() if k in names}
        values.update({k: v for k, v in cli.items() if k in names})
        try:
            out.append(cls(**values))
        except (ValueError, TypeError) as e:
            raise UsageError(f"{cls.__name__}: {e}") from e
    return tuple(out)
