"""LoRA as a switch on every method: wrap, reference scores with the adapter off, save.

peft is imported only when an adapter is made or met: it pulls in bitsandbytes and takes seconds
to import, which ``import genforget`` must not pay when LoRA is off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from genforget.config import UnlearnConfig
from genforget.peft_model import is_peft_model  # noqa: F401  (part of this module's API)

if TYPE_CHECKING:
    from peft import PeftModel


@dataclass
class LoraTargets:
    """What a LoRA adapter wraps, and why (logged, and kept in the run record).

    ``modules``: ``target_modules`` names (block-relative when chosen automatically);
    ``parameters``: 3-D expert weights, peft's ``target_parameters``; ``rule``: ``auto`` or
    ``lora_target_modules``; ``skipped``: linear layers left out, with why: peft refuses them
    (Mamba's ``out_proj``), or their forward never runs (a weight the model reads directly, like
    Mamba's ``dt_proj``, would carry an adapter that never acts);
    ``unmatched``: requested names that match nothing in this model."""

    modules: list[str]
    parameters: list[str] = field(default_factory=list)
    rule: str = "auto"
    skipped: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        why = "every linear layer of the decoder blocks" if self.rule == "auto" else "lora_target_modules"
        text = f"LoRA targets ({why}): {', '.join(self.modules + self.parameters)}"
        if self.skipped:
            text += f"; skipped: {', '.join(self.skipped)}"
        return text


# Layer names peft refuses to wrap with LoRA per model type (peft's
# _check_lora_target_modules_mamba: the fused selective-scan kernel reads these weights directly).
PEFT_REFUSES = {
    t: ("out_proj", "conv1d") for t in ("mamba", "mamba2", "falcon_mamba", "falcon_h1", "nemotron_h")
}


def _refused(model: torch.nn.Module, name: str) -> bool:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return name.rsplit(".", 1)[-1] in PEFT_REFUSES.get(model_type, ())


def _no_match_error(model: torch.nn.Module, requested: list[str], layer_pattern: str) -> ValueError:
    from genforget.lm.arch import describe_linear_layers

    what = f"lora_target_modules {requested}" if requested else "the automatic LoRA target rule"
    where = f" (layer_pattern {layer_pattern!r})" if layer_pattern else ""
    return ValueError(
        f"{what} match no linear layer of this {type(model).__name__}{where}. Its linear layers by "
        f"name: {describe_linear_layers(model) or 'none'}. Fix: leave lora_target_modules empty "
        "(every linear layer of the decoder blocks) or name some of the layers above"
    )


@torch.no_grad()
def _never_run(model: torch.nn.Module, full_names: dict[str, list[str]]) -> list[str]:
    """The names in ``full_names`` (relative name -> full module names) none of whose modules
    runs its forward in a training-mode forward of a short input. Such a layer's weight is read
    directly (Mamba's ``dt_proj``; fused kernels), so an adapter on it never enters the output.
    A model this probe cannot run keeps every name."""
    from genforget.lm.arch import fold_indices

    modules = dict(model.named_modules())
    ran: set[str] = set()
    handles = [
        modules[full].register_forward_hook(lambda *_a, name=full: ran.add(name))
        for fulls in full_names.values()
        for full in fulls
    ]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        # Training mode (fused kernels are chosen there); the RNG state is put back so a run's
        # draws (dropout, batches) do not depend on whether LoRA targets were probed.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            ids = torch.ones((1, 4), dtype=torch.long, device=device)
            model.train()
            model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    except Exception:  # an exotic forward: no probe, keep every target
        return []
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # By kind: one routed expert running is enough for all of its kind (routing is per token).
    kinds_ran = {fold_indices(n) for n in ran}
    return [rel for rel, fulls in full_names.items() if not any(fold_indices(f) in kinds_ran for f in fulls)]


def resolve_lora_targets(
    model: torch.nn.Module, requested: list[str] | None = None, layer_pattern: str = ""
) -> LoraTargets:
    """LoRA's targets in ``model``: the ``requested`` names (module-name suffixes, as peft
    matches them, or 3-D parameter names), or, when none are requested, every ``nn.Linear`` /
    ``Conv1D`` inside the decoder blocks plus the blocks' 3-D expert weights, less the layers whose
    forward never runs. Raises ``ValueError`` listing the model's linear layers when nothing
    matches."""
    if requested:
        names = [n for n, _ in model.named_modules()]
        params3d = [n for n, p in model.named_parameters() if p.dim() == 3]

        def hit(pool: list[str], t: str) -> bool:
            return any(n == t or n.endswith("." + t) for n in pool)

        modules = [t for t in requested if hit(names, t)]
        parameters = [t for t in requested if t not in modules and hit(params3d, t)]
        unmatched = [t for t in requested if t not in modules and t not in parameters]
        if not modules and not parameters:
            raise _no_match_error(model, list(requested), layer_pattern)
        refused = [t for t in modules if _refused(model, t)]
        if refused:
            raise ValueError(
                f"LoRA cannot wrap {refused} in this {type(model).__name__}: peft refuses it (the fused "
                "selective-scan kernel reads that weight directly). Fix: train without LoRA (use_lora "
                "false), or name other layers (lora_target_modules; for rmu: rmu_modules [mixer.in_proj])"
            )
        if unmatched:
            warnings.warn(
                f"lora_target_modules {unmatched} match nothing in this {type(model).__name__}; "
                f"LoRA wraps only {modules + parameters}",
                stacklevel=3,
            )
        return LoraTargets(modules, parameters, "lora_target_modules", unmatched=unmatched)
    from genforget.lm.arch import block_linear_layers

    found = block_linear_layers(model, layer_pattern)
    refused = [r for r in found.modules if _refused(model, r)]
    dead = _never_run(model, {r: f for r, f in found.modules.items() if r not in refused})
    skipped = [f"{r} (peft refuses LoRA there)" for r in refused]
    skipped += [f"{r} (its forward never runs: the weight is read directly)" for r in dead]
    modules = sorted(r for r in found.modules if r not in refused and r not in dead)
    if not modules and not found.parameters:
        raise _no_match_error(model, [], layer_pattern)
    return LoraTargets(modules, sorted(found.parameters), "auto", skipped=sorted(skipped))


def _is_diffusers(model: torch.nn.Module) -> bool:
    """A diffusers model (a UNet, a transformer of a pipeline), whose adapters export to diffusers'
    LoRA format."""
    return type(model).__module__.split(".")[0] == "diffusers"


def lora_config(model: torch.nn.Module, config: UnlearnConfig):
    """``(LoraConfig, LoraTargets)`` for ``model`` under ``config`` (see :func:`resolve_lora_targets`)."""
    from peft import LoraConfig

    targets = resolve_lora_targets(model, config.lora_target_modules, getattr(config, "layer_pattern", ""))
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        # Rank-stabilised scale for causal LMs: with alpha/r, an adapter's update at a given
        # learning rate is a fraction of full fine-tuning's (B starts at 0, A at ~1/sqrt(width)),
        # so NPO at the learning rate that forgets under full fine-tuning spent most of a 60-step
        # budget before the forget set moved, and the collateral watch's back-off ran out of
        # budget (Phi: forget 0.50 at step 60). Diffusers' LoRA format has no rsLoRA flag.
        use_rslora=bool(getattr(config, "use_rslora", False)) and not _is_diffusers(model),
        target_modules=targets.modules,
        bias="none",
        # peft >= 0.17; only mixture-of-experts blocks have 3-D expert weights to name.
        **({"target_parameters": targets.parameters} if targets.parameters else {}),
    )
    return lora, targets


def add_lora(model: torch.nn.Module, config: UnlearnConfig, log=None) -> PeftModel:
    """Wrap ``model`` with a fresh LoRA adapter; the base weights are frozen by peft.

    Targets: ``config.lora_target_modules``, or when it is empty every linear layer of the
    decoder blocks (:func:`resolve_lora_targets`). ``log`` (e.g. ``accelerator.print``) gets one
    line naming them; the resolved :class:`LoraTargets` is kept as ``genforget_lora_targets`` on
    the returned model for the run record."""
    from peft import get_peft_model

    if is_peft_model(model):
        return model
    lora, targets = lora_config(model, config)
    if log is not None:
        log(targets.describe())
    peft_model = get_peft_model(model, lora)
    peft_model.genforget_lora_targets = targets
    return peft_model


def lora_targets_of(model: torch.nn.Module) -> dict | None:
    """The :class:`LoraTargets` :func:`add_lora` chose for ``model``, as a dict, or None."""
    targets = getattr(model, "genforget_lora_targets", None) if is_peft_model(model) else None
    return targets.to_dict() if targets is not None else None


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module) -> Iterator[None]:
    """The frozen reference: the same model with its adapter switched off (no second copy)."""
    if not is_peft_model(model):
        raise TypeError("reference_mode needs a PeftModel; full fine-tuning uses cached reference log-probs")
    with model.disable_adapter(), torch.no_grad():
        yield


def resolve_save_mode(save_mode: str, is_peft: bool) -> str:
    """``full`` or ``adapter`` for a requested ``auto``/``full``/``adapter`` (LM and diffusion)."""
    if save_mode not in ("auto", "full", "adapter"):
        raise ValueError(f"save_mode must be 'auto', 'full' or 'adapter' (got {save_mode!r})")
    if save_mode == "adapter" and not is_peft:
        raise ValueError("save_mode='adapter' needs use_lora=true; a full fine-tune has no adapter to save")
    return save_mode if save_mode != "auto" else ("adapter" if is_peft else "full")


def save_model(
    model: torch.nn.Module,
    tokenizer,
    output_dir: str | Path,
    save_mode: str = "auto",
    state_dict: dict | None = None,
    card: dict | None = None,
) -> str:
    """Save as a PEFT adapter dir (``adapter``), a merged full model dir (``full``), or by type
    (``auto``: adapter for LoRA models). Returns the mode used.

    ``card``: the run's record for a model card (``README.md``): the keyword arguments of
    :func:`genforget.lm.model_card.write_lm_card` (``config``, ``data`` counts and hashes,
    ``outcome``, ``metrics``, ``certificate``).

    ``state_dict``: the full weights gathered by ``accelerator.get_state_dict`` when the model is
    sharded (FSDP, DeepSpeed ZeRO-3), where the module's own tensors are only this rank's shard;
    for a LoRA model the adapter is taken from it (and merged from it for ``full``). Empty
    (shape ``[0]``: ZeRO-3 partitions) or ``DTensor`` (FSDP2 shards) tensors mean the weights
    were not gathered: a ``RuntimeError`` is raised before anything is written."""
    output_dir = Path(output_dir)
    is_peft = is_peft_model(model)
    mode = resolve_save_mode(save_mode, is_peft)
    if mode == "full" and is_peft:
        model = merged_copy(model, state_dict) if state_dict is not None else model.merge_and_unload()
        state_dict = None
    if mode == "adapter":
        from peft import get_peft_model_state_dict

        check_gathered(get_peft_model_state_dict(model, state_dict=state_dict), "adapter")
    else:
        check_gathered(state_dict if state_dict is not None else model.state_dict(), "model")
    model.save_pretrained(output_dir, **({"state_dict": state_dict} if state_dict is not None else {}))
    tokenizer.save_pretrained(output_dir)
    if card is not None:
        from genforget.lm.model_card import write_lm_card

        write_lm_card(output_dir, model, adapter=mode == "adapter", **card)
    return mode


def check_gathered(state_dict: dict, what: str) -> None:
    """Refuse to save shards: an empty tensor (a ZeRO-3 partition outside a gather) or a
    ``DTensor`` (an FSDP2 shard) means the weights were not gathered from the processes."""
    from torch.distributed.tensor import DTensor

    bad = [
        k for k, v in state_dict.items() if torch.is_tensor(v) and (v.numel() == 0 or isinstance(v, DTensor))
    ]
    if not state_dict or bad:
        detail = (
            f"{len(bad)} of {len(state_dict)} tensors are shards, e.g. {bad[0]}" if bad else "it is empty"
        )
        raise RuntimeError(
            f"refusing to save the {what}: {detail}; the weights were not gathered from the FSDP / DeepSpeed "
            "processes (pass state_dict=accelerator.get_state_dict(prepared_model))"
        )


def merged_copy(model: PeftModel, state_dict: dict) -> torch.nn.Module:
    """A plain CPU copy of the LoRA ``model`` holding ``state_dict`` (gathered from shards), with
    its adapter merged: the sharded model itself cannot be merged in place. The copy is built
    from the model's config (its buffers and weight ties as at load) and filled from the dict."""
    import copy

    from peft import get_peft_model

    base = model.get_base_model()
    # FSDP2 subclasses each module it shards (FSDP<Class>); build the model's own class.
    cls = next(c for c in type(base).__mro__ if not c.__name__.startswith("FSDP"))
    dtype = next((v.dtype for v in state_dict.values() if torch.is_floating_point(v)), torch.float32)
    fresh = get_peft_model(cls(base.config).to(dtype), copy.deepcopy(model.peft_config[model.active_adapter]))
    own = {n for n, _ in fresh.named_parameters()}  # tied aliases (lm_head) share a parameter
    missing = [k for k in fresh.load_state_dict(state_dict, strict=False).missing_keys if k in own]
    if missing:
        raise RuntimeError(f"the gathered state dict lacks {missing[:3]}: cannot merge the adapter")
    return fresh.merge_and_unload()
