"""Training one SISA shard: cumulative slice stages of LoRA NLL fine-tuning, checkpointed.

Stage ``r`` trains on slices ``0..r`` of the shard and ends in checkpoint ``ckpt-{r+1}``
(adapter weights, AdamW state, the torch RNG state and the data-order generator's state);
``ckpt-0`` is the seeded initial adapter. Resuming from ``ckpt-j`` therefore replays exactly
what training from scratch would do from stage ``j`` on, which is what makes a deletion exact.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

from genforget.lm.data import Collator
from genforget.lm.scoring import token_logprobs
from genforget.sisa.shards import Manifest, SisaConfig

ADAPTER = "default"  # the one adapter trained in place; peft saves "default" at the dir's root


def shard_seed(seed: int, shard: int) -> int:
    """A per-shard seed that does not depend on how many shards were trained before."""
    return int(hashlib.sha256(f"sisa:{seed}:{shard}".encode()).hexdigest()[:8], 16)


def lora_config(cfg: SisaConfig, model: torch.nn.Module):
    """The ``LoraConfig`` every shard uses (targets: the configured names present in ``model``,
    or every linear layer of its decoder blocks when none are configured)."""
    from peft import LoraConfig

    from genforget.adapters import resolve_lora_targets

    targets = resolve_lora_targets(model, cfg.lora_target_modules)
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets.modules,
        bias="none",
        **({"target_parameters": targets.parameters} if targets.parameters else {}),
    )


def adapter_params(model: torch.nn.Module, adapter: str = ADAPTER) -> list[tuple[str, torch.nn.Parameter]]:
    """``(name, param)`` of one adapter's LoRA weights, sorted by name (the optimizer's order)."""
    tag = f".{adapter}."
    return sorted((n, p) for n, p in model.named_parameters() if "lora_" in n and tag in n)


def initial_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """peft's default LoRA init (A: Kaiming-uniform with a=sqrt(5), B: zeros) drawn from a
    generator seeded per shard, so shard k's start never depends on other shards."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, p in adapter_params(model):
        t = torch.empty(p.shape, dtype=torch.float32)
        if "lora_A" in name:
            torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)
        else:
            t.zero_()
        state[name] = t.to(p.dtype)
    return state


def _checkpoint(model, opt, gen: torch.Generator) -> dict:
    return {
        "adapter": {n: p.detach().cpu().clone() for n, p in adapter_params(model)},
        "optimizer": opt.state_dict() if opt is not None else None,
        "torch_rng": torch.get_rng_state(),
        "data_rng": gen.get_state(),
    }


def ckpt_path(root: Path, shard: int, stage: int) -> Path:
    return root / "checkpoints" / f"shard-{shard}" / f"ckpt-{stage}.pt"


def init_checkpoint(model: torch.nn.Module, cfg: SisaConfig, shard: int, root: Path) -> None:
    """Write ``ckpt-0``: the seeded initial adapter, no optimizer state, the seeded RNGs."""
    s = shard_seed(cfg.seed, shard)
    state = initial_state(model, s)
    torch.manual_seed(s)
    gen = torch.Generator().manual_seed(s)
    ckpt = {
        "adapter": state,
        "optimizer": None,
        "torch_rng": torch.get_rng_state(),
        "data_rng": gen.get_state(),
    }
    path = ckpt_path(root, shard, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)


def train_shard(
    model: torch.nn.Module,
    cfg: SisaConfig,
    shard: int,
    manifest: Manifest,
    store: dict[str, list[dict]],
    root: Path,
    start_stage: int,
    collate: Collator,
) -> int:
    """Train ``shard`` from checkpoint ``ckpt-{start_stage}`` through the last stage, writing
    each later checkpoint; leaves the final weights in ``model``'s adapter. Returns the steps."""
    model.set_adapter(ADAPTER)
    params = adapter_params(model)
    device = params[0][1].device
    ckpt = torch.load(ckpt_path(root, shard, start_stage), weights_only=False)
    with torch.no_grad():
        for n, p in params:
            p.copy_(ckpt["adapter"][n])
    # A fresh AdamW loaded with the saved state continues exactly where the old one stopped.
    opt = torch.optim.AdamW(
        [p for _, p in params], lr=cfg.learning_rate, weight_decay=cfg.weight_decay, foreach=False
    )
    if ckpt["optimizer"] is not None:
        opt.load_state_dict(ckpt["optimizer"])
    outer_rng = torch.get_rng_state()
    torch.set_rng_state(ckpt["torch_rng"])
    gen = torch.Generator()
    gen.set_state(ckpt["data_rng"])
    model.train()
    steps = 0
    for stage in range(start_stage, cfg.n_slices):
        feats = [f for h in manifest.hashes(shard, upto_slice=stage) for f in store[h]]
        n_steps = cfg.stage_steps(len(feats))
        order: list[int] = []
        while len(order) < n_steps * cfg.batch_size:
            order += torch.randperm(len(feats), generator=gen).tolist()
        for i in range(n_steps):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            batch = {k: v.to(device) for k, v in collate([feats[j] for j in idx]).items()}
            logp, mask = token_logprobs(model, batch)
            loss = -logp.sum() / mask.sum()
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
        steps += n_steps
        torch.save(_checkpoint(model, opt, gen), ckpt_path(root, shard, stage + 1))
    model.eval()
    torch.set_rng_state(outer_rng)
    return steps
