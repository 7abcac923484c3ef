"""Which distributed engine a run really uses, and the batches that make N processes equal one.

``accelerate launch`` with an FSDP or DeepSpeed config only *asks* for that engine: accelerate
selects FSDP/DeepSpeed only when it sees an accelerator device, and otherwise trains as plain data
parallel without a word. This module says what runs (:func:`describe_engine`, printed as the run's
first line and stored in ``genforget_run.json``), warns when the engine asked for is not the one
that runs, and fails on that with ``require`` (the recipe's ``--require_engine true``).

CPU runs of the real engines (tests, and anyone checking a config without a GPU): with
``GENFORGET_CPU_ENGINE=1`` in the environment of an ``accelerate launch`` whose config asks for
FSDP or DeepSpeed, :func:`make_accelerator` builds the accelerator the way accelerate builds it on
GPUs, over gloo on the CPU:

- DeepSpeed: ``DS_ACCELERATOR=cpu`` (DeepSpeed's CPU accelerator, whose collectives fall back
  to gloo) and ``Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")])``:
  accelerate's own DeepSpeed path then initialises ``deepspeed.comm`` on gloo.
- FSDP: the process group is started on gloo first (``PartialState(backend="gloo")``) and its
  distributed type set to ``MULTI_GPU``, the only state accelerate turns into FSDP; the
  ``FullyShardedDataParallelPlugin`` it then builds from the launch config shards with torch's
  ``fully_shard`` (FSDP2) over a CPU device mesh.

:func:`cpu_adapted_config` turns a shipped ``recipes/accelerate/*.yaml`` into such a CPU config.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from genforget.loop import shuffled_batches

CPU_ENGINE_ENV = "GENFORGET_CPU_ENGINE"
SHARDED = ("FSDP", "DEEPSPEED")


class EngineMismatch(RuntimeError):
    """The engine asked for is not the one that runs (raised only when it is required)."""


def requested_engine() -> str | None:
    """``FSDP`` / ``DEEPSPEED`` when ``accelerate launch`` was given such a config, else None."""
    for name in SHARDED:
        flag = "ACCELERATE_USE_FSDP" if name == "FSDP" else "ACCELERATE_USE_DEEPSPEED"
        if os.environ.get(flag, "false").lower() == "true":
            return name
    return None


def make_accelerator():
    """The run's ``Accelerator``: on a GPU machine whatever the launch config says; on the CPU
    plain (or data-parallel) unless ``GENFORGET_CPU_ENGINE=1`` forces the configured FSDP /
    DeepSpeed engine onto gloo (see the module docstring)."""
    from accelerate import Accelerator

    engine = requested_engine()
    forced = os.environ.get(CPU_ENGINE_ENV, "") == "1" and int(os.environ.get("LOCAL_RANK", -1)) >= 0
    if torch.cuda.is_available() or engine is None or not forced:
        return Accelerator(cpu=not torch.cuda.is_available())
    from accelerate import DistributedType, PartialState
    from accelerate.utils import InitProcessGroupKwargs

    gloo = InitProcessGroupKwargs(backend="gloo")
    if engine == "DEEPSPEED":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
        return Accelerator(kwargs_handlers=[gloo])
    PartialState(**gloo.to_kwargs())
    PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
    return Accelerator(kwargs_handlers=[gloo])


def _precision(accelerator) -> str:
    if accelerator.distributed_type.value == "DEEPSPEED":  # DeepSpeed's own config decides
        cfg = accelerator.state.deepspeed_plugin.deepspeed_config
        for name in ("bf16", "fp16"):
            if str(cfg.get(name, {}).get("enabled", False)).lower() == "true":
                return name
        return "no"
    return str(accelerator.mixed_precision)


def param_shares(model: torch.nn.Module | None) -> dict | None:
    """How much of the model's parameters this process holds: ``{"params": n, "sharded": k,
    "local_share": local elements / all elements}``, read from the parameters themselves (FSDP2
    ``DTensor`` shards, ZeRO-3 partitions ``ds_tensor``)."""
    if model is None:
        return None
    from torch.distributed.tensor import DTensor

    n = k = local = full = 0
    for p in model.parameters():
        n += 1
        if isinstance(p, DTensor):
            numel, mine = p.numel(), p.to_local().numel()
        elif hasattr(p, "ds_numel"):
            numel, mine = p.ds_numel, p.ds_tensor.numel()
        else:
            numel = mine = p.numel()
        k += mine < numel
        local, full = local + min(mine, numel), full + numel
    return {"params": n, "sharded": k, "local_share": round(local / max(full, 1), 4)}


def describe_engine(
    accelerator, model: torch.nn.Module | None = None, optimizer_share: float | None = None
) -> dict:
    """What runs: distributed type, world size, FSDP version and sharding / ZeRO stage, mixed
    precision, and (given the prepared model) the share of the parameters each process holds."""
    dt = accelerator.distributed_type.value
    info: dict = {
        "distributed_type": dt,
        "requested": requested_engine(),
        "world_size": accelerator.num_processes,
        "backend": accelerator.state.backend,
        "device": accelerator.device.type,
        "mixed_precision": _precision(accelerator),
    }
    if dt == "FSDP":
        plugin = accelerator.state.fsdp_plugin
        info["fsdp_version"] = plugin.fsdp_version
        info["sharding"] = (
            f"reshard_after_forward={plugin.reshard_after_forward}"
            if plugin.fsdp_version == 2
            else str(getattr(plugin.sharding_strategy, "name", plugin.sharding_strategy))
        )
    elif dt == "DEEPSPEED":
        zero = accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
        info["zero_stage"] = int(zero.get("stage", 0))
        info["sharding"] = f"ZeRO-{info['zero_stage']}"
        if info["zero_stage"] == 3:
            info["param_persistence_threshold"] = zero.get("stage3_param_persistence_threshold")
    # FSDP1 flattens parameters into per-unit shards that its modules hide; not read (FSDP1
    # cannot run on the CPU here: docs/distributed.md).
    fsdp1 = dt == "FSDP" and info["fsdp_version"] == 1
    if model is not None:
        info["param_shares"] = None if fsdp1 else param_shares(model)
    if optimizer_share is not None and not fsdp1:
        info["optimizer_state_share"] = round(optimizer_share, 4)
    return info


def engine_line(info: dict) -> str:
    """One line naming the engine that runs (the run's first log line)."""
    name = info["distributed_type"]
    if name == "FSDP":
        name = f"FSDP{info['fsdp_version']} ({info['sharding']})"
    elif name == "DEEPSPEED":
        name = f"DeepSpeed ZeRO-{info['zero_stage']}"
    line = (
        f"engine: {name}, {info['world_size']} process(es) on {info['device']}"
        f"{' over ' + info['backend'] if info.get('backend') else ''}, mixed precision {info['mixed_precision']}"
    )
    shares = info.get("param_shares")
    if shares:
        line += f"; parameters held per process {shares['local_share']:.0%} ({shares['sharded']}/{shares['params']} sharded)"
    if "optimizer_state_share" in info:
        line += f", optimizer state {info['optimizer_state_share']:.0%}"
    return line


def check_engine(info: dict, require: bool = False) -> str | None:
    """The warning for an engine that is not the one asked for, or that shards nothing; raises
    :class:`EngineMismatch` instead when ``require``. None when all is as configured."""
    asked, runs, world = info["requested"], info["distributed_type"], info["world_size"]
    problem = None
    if asked is not None and runs != asked:
        problem = (
            f"the launch config asks for {asked} but accelerate runs {runs} ({world} process(es), no sharding): "
            "accelerate selects FSDP/DeepSpeed only on an accelerator device"
            + (
                ""
                if torch.cuda.is_available()
                else f"; on the CPU set {CPU_ENGINE_ENV}=1 to run the real engine"
            )
        )
    elif runs in SHARDED and world > 1:
        params = (info.get("param_shares") or {}).get("local_share", 0.0)  # None: not read (FSDP1)
        opt = info.get("optimizer_state_share", 0.0)
        stage = info.get("zero_stage", 3)
        expect_params = runs == "FSDP" or stage == 3
        if (expect_params and params >= 1.0) or (not expect_params and opt >= 1.0):
            problem = f"{runs} runs on {world} processes but nothing is sharded (each holds all of it)"
    if problem is None:
        return None
    if require:
        raise EngineMismatch(f"{problem}; refusing to train (require_engine)")
    warnings.warn(problem, stacklevel=2)
    return problem


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds bitsandbytes 4-/8-bit weights (a QLoRA base), read from the flags
    transformers sets and from the parameter types themselves (so any loader is caught)."""
    if any(getattr(model, f, False) for f in ("is_loaded_in_4bit", "is_loaded_in_8bit")):
        return True
    return any(type(p).__name__ in ("Params4bit", "Int8Params") for p in model.parameters())


def configure_engine(accelerator, config, model: torch.nn.Module, method=None) -> None:
    """Before ``prepare``: refuse what FSDP / DeepSpeed cannot run here, and make DeepSpeed clip
    at ``max_grad_norm`` (it clips inside its own step, whatever the loop asks) with this run's
    per-process batch, gathering ZeRO-3 weights for the save."""
    dt = accelerator.distributed_type.value
    if dt not in SHARDED:
        return
    if dt == "FSDP" and accelerator.state.fsdp_plugin.fsdp_version != 2:
        raise ValueError(
            "FSDP1 (fsdp_version 1) is not supported: reference, guard and calibration passes call the model "
            "outside FSDP1's wrapper, where its flattened shards cannot compute; set fsdp_version: 2 "
            "(recipes/accelerate/fsdp.yaml)"
        )
    ds_config = accelerator.state.deepspeed_plugin.deepspeed_config if dt == "DEEPSPEED" else {}
    params_sharded = dt == "FSDP" or int(ds_config.get("zero_optimization", {}).get("stage", 0)) == 3
    if getattr(method, "needs_hidden", False) and not config.use_lora and params_sharded:
        raise ValueError(
            f"{config.method} without LoRA is not supported when parameters are sharded (FSDP, ZeRO-3): its frozen "
            "pass swaps the original weights in with torch.func.functional_call, which sharded parameters do "
            "not take; use --use_lora true, ZeRO-2 or DDP"
        )
    if is_quantized(model):
        raise ValueError(
            f"a 4-/8-bit (bitsandbytes) base model under {dt} is not supported: quantized LoRA (QLoRA) runs on "
            "one process or under DDP (recipes/accelerate/ddp.yaml); or load the base unquantized to shard it"
        )
    if config.sam_rho > 0 or config.quant_aware_weight > 0 or config.relearn_aware_steps > 0:
        raise ValueError(
            f"sam_rho / quant_aware_weight / relearn_aware_steps are not supported under {dt}: they run several backward passes per "
            "step at moved weights (DeepSpeed steps its optimizer in each backward); set them 0 or use DDP"
        )
    if config.undo_alpha > 0:
        raise ValueError(
            f"undo_alpha is not supported under {dt}: UNDO distils into the unwrapped model, which holds only this "
            "process's shards; set undo_alpha 0 or use DDP"
        )
    if dt == "DEEPSPEED":
        plugin = accelerator.state.deepspeed_plugin
        ds = plugin.deepspeed_config
        clip = ds.get("gradient_clipping", "auto")
        if clip not in ("auto", config.max_grad_norm) and accelerator.is_main_process:
            warnings.warn(
                f"DeepSpeed config gradient_clipping {clip} replaced by max_grad_norm {config.max_grad_norm}",
                stacklevel=2,
            )
        ds["gradient_clipping"] = config.max_grad_norm
        if plugin.is_auto("train_micro_batch_size_per_gpu") or "train_micro_batch_size_per_gpu" not in ds:
            ds["train_micro_batch_size_per_gpu"] = config.batch_size
        zero = ds.setdefault("zero_optimization", {})
        if int(zero.get("stage", 0)) == 3:  # the save gathers the weights (accelerate's get_state_dict)
            zero["stage3_gather_16bit_weights_on_model_save"] = True


def sharded_batches(
    features: list[dict],
    batch_size: int,
    world_size: int,
    rank: int,
    collate,
    generator: torch.Generator,
    device: torch.device,
    name: str = "forget",
) -> Iterator[dict]:
    """This process's share of global batches of ``batch_size * world_size`` examples, forever.

    Every process draws the same shuffled stream from ``generator`` and takes its slice of each
    global batch, so the examples of a step are the same on 1 and N processes. A batch never
    ends short: batches run on across epochs (:func:`genforget.loop.shuffled_batches`), so no
    last batch needs padding (accelerate's loader repeats examples to fill it, which made two
    processes differ from one) and no example is dropped; each is seen once per epoch's worth of
    steps. A set smaller than one global batch is used whole each step; when it does not divide
    over the processes, the remainder rotates out (warned: then N processes differ from one).
    """
    n = len(features)
    if n < world_size:
        raise ValueError(
            f"{name} set has {n} examples, fewer than the {world_size} processes; "
            "run on fewer processes or give more examples"
        )
    size = min(batch_size * world_size, n - n % world_size)
    if size < min(batch_size * world_size, n):
        warnings.warn(
            f"{name} set: {n} examples do not split evenly over {world_size} processes; each step uses "
            f"{size} (a different {n - size} left out each time), so this run differs from one process",
            stacklevel=2,
        )
    k = size // world_size
    for take in shuffled_batches(n, size, generator):
        batch = collate([features[i] for i in take[rank * k : (rank + 1) * k]])
        yield {key: v.to(device) for key, v in batch.items()}


def gathered_state_dict(accelerator) -> dict | None:
    """Under FSDP / DeepSpeed, the prepared model's full state dict gathered from the shards with
    ``accelerator.get_state_dict`` (adapter weights included); every process must call it, the
    main one receives it. None when nothing is sharded or no model was prepared (a one-shot
    method): then the model's own tensors are whole."""
    if accelerator.distributed_type.value not in SHARDED or not accelerator._models:
        return None
    state_dict = accelerator.get_state_dict(accelerator._models[0])
    if not accelerator.is_main_process:
        return None
    # Gathering copies each tensor, so tied weights (lm_head = embed_tokens) come back as two;
    # keep each parameter once, under its own name, as the unsharded model's save would.
    raw = accelerator.unwrap_model(accelerator._models[0])
    own = {n for n, _ in raw.named_parameters()} | {n for n, _ in raw.named_buffers()}
    return {k: v for k, v in state_dict.items() if k in own}


def cpu_adapted_config(
    shipped: str | Path,
    out: str | Path,
    num_processes: int = 2,
    param_persistence_threshold: int | None = 0,
    **overrides,
) -> Path:
    """A CPU version of a shipped ``recipes/accelerate/*.yaml``, written to ``out``.

    What changes and why: ``num_processes`` (2 gloo processes instead of 8 GPUs),
    ``mixed_precision: no`` (bf16 autocast is a GPU feature here), ``distributed_type
    MULTI_GPU`` for DDP configs (accelerate's ``MULTI_CPU`` launches one process), and for
    DeepSpeed a JSON config (``deepspeed_config_file``) carrying the YAML's ZeRO settings plus
    ``stage3_param_persistence_threshold`` (default 0: on a tiny model ZeRO-3 would otherwise
    keep every small parameter whole, so nothing would be partitioned). Everything else (FSDP
    version, wrap policy, reshard, ZeRO stage, clipping) is kept. Launch with
    ``GENFORGET_CPU_ENGINE=1`` for FSDP/DeepSpeed to run for real.
    """
    import json

    import yaml

    cfg = yaml.safe_load(Path(shipped).read_text())
    cfg.update(num_processes=num_processes, mixed_precision="no", **overrides)
    cfg.pop("gpu_ids", None)
    cfg.pop("use_cpu", None)
    out = Path(out)
    if cfg["distributed_type"] == "DEEPSPEED":
        ds = cfg.pop("deepspeed_config")
        zero = {"stage": ds["zero_stage"]}
        for key, ds_key in (
            ("offload_optimizer_device", "offload_optimizer"),
            ("offload_param_device", "offload_param"),
        ):
            if ds.get(key, "none") != "none":
                zero[ds_key] = {"device": ds[key]}
        if ds["zero_stage"] == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = bool(ds.get("zero3_save_16bit_model", True))
            if param_persistence_threshold is not None:
                zero["stage3_param_persistence_threshold"] = param_persistence_threshold
        js = {
            "zero_optimization": zero,
            "gradient_accumulation_steps": ds.get("gradient_accumulation_steps", 1),
            "gradient_clipping": ds.get("gradient_clipping", 1.0),
            "train_micro_batch_size_per_gpu": "auto",
        }
        cfg.pop("mixed_precision")  # accelerate refuses it beside a JSON file (which has no bf16: fp32)
        json_path = out.with_suffix(".ds.json")
        json_path.write_text(json.dumps(js, indent=2))
        cfg["deepspeed_config"] = {
            "deepspeed_config_file": str(json_path),
            "zero3_init_flag": bool(ds.get("zero3_init_flag", False)),
            "deepspeed_multinode_launcher": "standard",
        }
    elif cfg["distributed_type"] in ("NO", "MULTI_CPU") and num_processes > 1:
        cfg["distributed_type"] = "MULTI_GPU"
    out.write_text(yaml.safe_dump(cfg))
    return out
