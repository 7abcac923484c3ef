"""Locate: read the training data once and find every record holding a request's identifiers.

TRAIN (``--data``) is a JSONL file (``--text_field``, default ``text``; ``prompt``/``target`` and
``question``/``answer`` pairs are read as one text, as the trainer reads them), a directory or
glob of shards (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``, ``.parquet``, ``.txt`` = one record per
file), a ``datasets`` dataset saved with ``save_to_disk``, or any of these behind an fsspec URL
(:mod:`genforget.requests.sources`).

:func:`locate` scans the shards in this process (:mod:`genforget.requests.scan`: a byte-level
prefilter, then the exact matcher on the few kept records); :func:`locate_distributed`
(:mod:`genforget.requests.scale`, ``genforget[scale]``) runs the same scan as a datatrove
pipeline over local processes, a Slurm cluster or a Ray cluster and merges the tasks' outputs
into the same result. Memory holds one block, the located records and two bounded samples:
flat in the corpus size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from genforget.requests.records import (
    WORK_NGRAM,
    Hit,
    Located,
    LocateResult,
    Render,
    ScanOptions,
    record_text,
)

if TYPE_CHECKING:  # annotations only: request.py imports association.py, which reads records
    from genforget.requests.request import Request

__all__ = ["WORK_NGRAM", "Hit", "LocateResult", "Located", "iter_records", "locate", "record_text"]


def iter_records(
    data: str | Path, text_field: str = "text", render: Render | None = None
) -> Iterator[tuple[str, str]]:
    """``(record id, text)`` for every record of TRAIN, streamed and fully decoded (no prefilter;
    :func:`locate` does not use it)."""
    from genforget.config import UsageError
    from genforget.requests.sources import column_batches, jsonl_blocks, open_shard, plan_shards

    for shard in plan_shards(data):
        if shard.fmt == "jsonl":
            n = 0
            for blk in jsonl_blocks(shard):
                for line in blk.split(b"\n")[:-1]:
                    n += 1
                    if line.strip():
                        where = f"--data {shard.url}:{n}"
                        try:
                            obj = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise UsageError(f"{where}: not valid JSON ({e.msg})") from e
                        yield f"{shard.prefix}:{n}", record_text(obj, text_field, where, render)
        elif shard.fmt in ("parquet", "arrow"):
            n = shard.first
            for batch, _ in column_batches(shard, text_field):
                for row in batch.to_pylist():
                    yield (
                        f"{shard.prefix}:{n}",
                        record_text(row, text_field, f"--data {shard.url}:{n}", render),
                    )
                    n += 1
        else:
            with open_shard(shard) as f:
                yield shard.prefix, f.read().decode("utf-8", errors="replace")


def locate(requests: list[Request], data: str | Path, text_field: str = "text", **options) -> LocateResult:
    """One pass over ``data`` in this process: every record holding any identifier of any
    request, with spans; a seeded sample of the others as retain set. ``text_field``: the field of
    a record holding its text; ``options``: the other fields of
    :class:`~genforget.requests.records.ScanOptions` (``retain_size``, ``seed``, ``near_dup``,
    ``prefilter``, ``render`` ...), by keyword."""
    from tqdm.auto import tqdm

    from genforget.requests.scan import Scanner, merge
    from genforget.requests.sources import plan_shards

    t0 = time.perf_counter()
    shards = plan_shards(data)
    sc = Scanner(requests, ScanOptions(text_field, **options))
    for si, shard in enumerate(tqdm(shards, desc="locate", unit="shard", disable=len(shards) < 2 or None)):
        sc.scan(shard, si)
    res = merge([sc.snapshot()], requests, sc)
    res.seconds = time.perf_counter() - t0
    res.extra.update(workers=0, executor="in-process", shards=len(shards))
    return res
