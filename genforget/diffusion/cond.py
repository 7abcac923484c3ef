"""A UNet's conditioning as one batch-first value: a tensor or a dict of tensors.

Class-conditional UNets take class ids (``[N]``), Stable Diffusion 1.x/2.x UNets the text
encoder's hidden states (``[N, L, D]``), and SDXL UNets those plus a pooled text embedding and
six size/crop ids (``{"encoder_hidden_states", "text_embeds", "time_ids"}``, the last two passed
as ``added_cond_kwargs``). The trainer, the sampler and the scores index, concatenate and move
conditions with these helpers and never look inside.
"""

from __future__ import annotations

from typing import Any

import torch

Cond = torch.Tensor | dict[str, torch.Tensor]

# Keys of an SDXL condition that go to the UNet as ``added_cond_kwargs``.
ADDED_COND_KEYS = ("text_embeds", "time_ids")


def cond_len(c: Cond) -> int:
    """Rows (examples) in ``c``."""
    return len(next(iter(c.values()))) if isinstance(c, dict) else len(c)


def cond_map(c: Cond, fn: Any) -> Cond:
    """``fn`` applied to the tensor, or to every tensor of the dict."""
    return {k: fn(v) for k, v in c.items()} if isinstance(c, dict) else fn(c)


def cond_index(c: Cond, idx: Any) -> Cond:
    """Rows ``idx`` (an index tensor, a slice or an int list) of ``c``."""
    return cond_map(c, lambda v: v[idx])


def cond_expand(c: Cond, n: int) -> Cond:
    """A one-row condition repeated to ``n`` rows (a view where it can be)."""
    return cond_map(c, lambda v: v.expand(n, *v.shape[1:]))


def cond_cat(cs: list[Cond]) -> Cond:
    """Rows of several conditions of the same structure, stacked."""
    if isinstance(cs[0], dict):
        return {k: torch.cat([c[k] for c in cs]) for k in cs[0]}
    return torch.cat(cs)


def cond_to(c: Cond, device: Any) -> Cond:
    return cond_map(c, lambda v: v.to(device))


def unet_kwargs(cond_key: str, cond: Cond) -> dict[str, Any]:
    """Keyword arguments of the UNet's forward for ``cond``: ``{cond_key: cond}`` for a tensor,
    SDXL's ``added_cond_kwargs`` split out of a dict."""
    if not isinstance(cond, dict):
        return {cond_key: cond}
    kw: dict[str, Any] = {k: v for k, v in cond.items() if k not in ADDED_COND_KEYS}
    added = {k: cond[k] for k in ADDED_COND_KEYS if k in cond}
    if added:
        kw["added_cond_kwargs"] = added
    return kw


class CondDataset(torch.utils.data.Dataset):
    """``(image, condition row)`` pairs; the default collate stacks dict conditions key by key."""

    def __init__(self, images: torch.Tensor, cond: Cond) -> None:
        if len(images) != cond_len(cond):
            raise ValueError(f"{len(images)} images but {cond_len(cond)} conditions")
        self.images, self.cond = images, cond

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Cond]:
        return self.images[i], cond_index(self.cond, i)
