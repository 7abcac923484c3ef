"""The trainable weights and optimizer state of a prepared model, under any engine.

The safeguards' snapshot store (the divergence guard's and the collateral watch's last good
states) and resumable checkpoints keep and put back the state of training. Reading it as
``params`` + ``optimizer.state_dict()["state"]`` works only when every process holds everything
(one process, DDP):

- FSDP2 replaces the parameters at ``accelerator.prepare`` by ``DTensor`` shards (a list taken
  before is stale) and its optimizer state is sharded the same way;
- DeepSpeed ZeRO steps fp32 flat *partitions* of the parameters with a torch optimizer inside
  its own (whose ``state_dict`` has no ``"state"``), and under ZeRO-3 a module parameter holds
  nothing outside a forward pass.

:class:`TrainState` reads what the optimizer actually steps on this process: the local shards
(the DTensors' local tensors, or ZeRO's fp32 partitions and their torch optimizer's state), so a
snapshot costs each process only its share, and putting one back touches no other process.
After ZeRO's fp32 partitions are put back, the module weights are refreshed from them the way
ZeRO does after each step. :meth:`TrainState.full_weights` gathers the full trainable weights by
name (every process takes part) for a checkpoint's ``weights.safetensors``.
"""

from __future__ import annotations

import copy

import torch


def _local(t):
    """A ``DTensor``'s local shard; any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _cpu(t):
    return _local(t).detach().to("cpu", copy=True) if torch.is_tensor(t) else copy.deepcopy(t)


def _base_optimizer(optimizer):
    """The torch optimizer inside accelerate's wrapper (and inside DeepSpeed's ZeRO optimizer)."""
    from accelerate.optimizer import AcceleratedOptimizer

    while isinstance(optimizer, AcceleratedOptimizer):
        optimizer = optimizer.optimizer
    return optimizer


class TrainState:
    """What this process holds of the trainable weights and the optimizer state.

    ``model`` and ``optimizer`` are the objects ``accelerator.prepare`` returned; ``raw`` the
    unwrapped model (parameter names).
    """

    def __init__(self, model: torch.nn.Module, optimizer, raw: torch.nn.Module) -> None:
        inner = _base_optimizer(optimizer)
        # A DeepSpeed ZeRO optimizer is no torch optimizer; the torch one it drives is `.optimizer`.
        self.zero = None if isinstance(inner, torch.optim.Optimizer) else inner
        self.base = inner.optimizer if self.zero is not None else inner
        if not isinstance(self.base, torch.optim.Optimizer):
            raise NotImplementedError(f"no way to read the state of optimizer {type(inner).__name__}")
        self.stage = (
            3 if self.zero is not None and hasattr(self.zero, "fp32_partitioned_groups_flat") else None
        )
        if self.zero is not None and self.stage is None:
            self.stage = 2 if hasattr(self.zero, "single_partition_of_fp32_groups") else None
            if self.stage is None:
                raise NotImplementedError(f"no way to read the state of {type(inner).__name__}")
        self.module = model.module if self.zero is not None else raw
        # What the optimizer steps: the module's trainable parameters (shards under FSDP2), or
        # ZeRO's flat fp32 partitions (ZeRO-3 puts them in its torch optimizer only during a step).
        if self.stage == 3:
            self.tensors = list(self.zero.fp32_partitioned_groups_flat)
        elif self.stage == 2:
            self.tensors = list(self.zero.single_partition_of_fp32_groups)
        else:
            self.tensors = [p for g in self.base.param_groups for p in g["params"]]
        self.named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]

    @property
    def params(self) -> list[torch.Tensor]:
        """The module's trainable parameters as they are now (FSDP2: ``DTensor`` shards)."""
        return [p for _, p in self.named]

    def share(self) -> float:
        """Elements this process's optimizer steps / all trainable elements (1.0: nothing sharded)."""
        mine = sum(_local(t).numel() for t in self.tensors)
        total = sum(getattr(p, "ds_numel", p.numel()) for p in self.params)
        return mine / max(total, 1)

    # -- local snapshots (the safeguards' SnapshotStore, sharded checkpoints) ------------------
    def weights(self) -> list[torch.Tensor]:
        """CPU copies of this process's share of the trainable weights."""
        return [_cpu(t) for t in self.tensors]

    @torch.no_grad()
    def load_weights(self, saved: list[torch.Tensor]) -> None:
        """Put back :meth:`weights` (this process's share)."""
        for t, s in zip(self.tensors, saved, strict=True):
            _local(t).copy_(s)
        self._refresh_module()

    def optimizer_state(self) -> dict:
        """This process's optimizer state, a torch ``state_dict`` with local CPU tensors (under
        ZeRO: the state of its fp32 partitions, by their index, and the groups' hyperparameters)."""
        if self.zero is not None:
            return {
                "state": {
                    i: {k: _cpu(v) for k, v in self.base.state[t].items()}
                    for i, t in enumerate(self.tensors)
                    if t in self.base.state
                },
                "param_groups": [
                    {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                    for g in self.base.param_groups
                ],
            }
        sd = self.base.state_dict()
        return {
            "state": {i: {k: _cpu(v) for k, v in st.items()} for i, st in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"]),
        }

    def load_optimizer_state(self, sd: dict) -> None:
        """Put back :meth:`optimizer_state` (the same process's, same engine and world size)."""
        from torch.distributed.tensor import DTensor

        if self.zero is not None:
            for i, t in enumerate(self.tensors):
                st = sd["state"].get(i, sd["state"].get(str(i)))
                if st is None:
                    self.base.state.pop(t, None)
                else:
                    # Adam's `step` stays where torch keeps it (the CPU, unless capturable/fused).
                    self.base.state[t] = {
                        k: v.to(t.device if k != "step" else v.device, copy=True) if torch.is_tensor(v) else v
                        for k, v in st.items()
                    }
            for g, saved in zip(self.base.param_groups, sd["param_groups"], strict=True):
                g.update({k: v for k, v in saved.items() if k != "params"})
            return

        state = {}
        for i, st in sd["state"].items():
            p = self.tensors[int(i)]
            state[int(i)] = {
                k: DTensor.from_local(
                    v.to(p.device), p.device_mesh, p.placements, shape=p.shape, stride=p.stride()
                )
                if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == _local(p).shape
                else v
                for k, v in st.items()
            }
        self.base.load_state_dict({"state": state, "param_groups": copy.deepcopy(sd["param_groups"])})

    @torch.no_grad()
    def _refresh_module(self) -> None:
        """Make the module compute with the weights just put back. ZeRO: copy the fp32
        partitions into the module's weights, as ZeRO does after a step. FSDP2: drop the gathered
        copies a forward left in place (the root keeps its own after a forward without backward,
        and a later forward would reuse them), so the next forward gathers the new shards."""
        try:
            from torch.distributed.fsdp import FSDPModule
        except ImportError:  # torch < 2.6: no FSDP2 through accelerate
            FSDPModule = ()  # noqa: N806
        for m in self.module.modules():
            if isinstance(m, FSDPModule):
                m.reshard()
        if self.stage == 2:
            self.zero.update_lp_params()  # own partition in, then all-gathered over the processes
        elif self.stage == 3:
            from deepspeed.utils import safe_get_local_fp32_param

            for p in self.params:  # each process's partition of each parameter
                p.ds_tensor.data.copy_(safe_get_local_fp32_param(p).view_as(p.ds_tensor))

    # -- gathered (checkpoint weights file) ----------------------------------------------------
    @torch.no_grad()
    def full_weights(self) -> dict[str, torch.Tensor]:
        """The full trainable weights by parameter name, on the CPU. Every process must call it
        (the shards are gathered); all receive them."""
        from torch.distributed.tensor import DTensor

        out = {}
        for name, p in self.named:
            if self.zero is not None:
                from deepspeed.utils import safe_get_full_fp32_param

                full = safe_get_full_fp32_param(p)
            else:
                full = p.full_tensor() if isinstance(p, DTensor) else p
            out[name] = full.detach().to("cpu", copy=True).contiguous()
        return out
