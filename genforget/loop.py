"""Training-loop helpers shared by the LM and diffusion trainers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


def cycle(loader: DataLoader) -> Iterator[Any]:
    """Batches of ``loader`` forever, re-seeding its sampler each epoch (``set_epoch``) so a
    distributed shuffle differs per epoch but agrees across processes."""
    for epoch in itertools.count():
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
