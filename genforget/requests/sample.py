"""Seeded samples that any split of the data reproduces: *bottom-k* sampling.

Each record's key is a 64-bit hash of (seed, shard prefix, record number) — splitmix64, computed
for a whole block at once with numpy — and a sample of size k is the k records with the smallest
keys. That is a uniform sample without replacement (every k-subset is equally likely, as with a
reservoir), seeded, and *mergeable*: the k smallest keys of a union are the k smallest of the
parts' k smallest, so the tasks of a distributed run, merged, give exactly the sample of one
process (Cohen & Kaplan, "Summarizing data using bottom-k sketches", PODC 2007).
"""

from __future__ import annotations

import hashlib
import heapq

import numpy as np

FULL = 1 << 64  # the threshold of a sample not yet full


def shard_base(seed: int, prefix: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{prefix}".encode(), digest_size=8).digest(), "little")


def record_keys(base: int, numbers: np.ndarray) -> np.ndarray:
    """splitmix64 of ``base + number * golden``: the sampling key of each record number."""
    with np.errstate(over="ignore"):
        z = np.uint64(base) + numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class BottomK:
    """The ``k`` entries with the smallest keys seen so far (a max-heap on the key)."""

    def __init__(self, k: int) -> None:
        self.k, self.heap = k, []

    def threshold(self) -> int:
        return -self.heap[0][0] if len(self.heap) >= self.k else FULL

    def offer(self, key: int, rid: str, text: str) -> None:
        if self.k <= 0:
            return
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, (-key, rid, text))
        elif key < -self.heap[0][0]:
            heapq.heapreplace(self.heap, (-key, rid, text))

    def items(self) -> list[tuple[int, str, str]]:
        return sorted((-k, rid, t) for k, rid, t in self.heap)
