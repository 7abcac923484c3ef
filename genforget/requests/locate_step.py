"""The locate scan as a datatrove pipeline step (imported only by :mod:`.scale`: needs
``genforget[scale]``).

Task ``rank`` of ``world_size`` scans the shards ``rank, rank + world_size, ...`` of the plan
the driver made (so record ids and sample keys are those of the single-process scan), and writes
``<output>/<rank>.json``: its located records (record id, shard, offset, spans, identifier type
counts and the record's text), its bottom-k retain and neighbour samples and its counts. The
request queue travels sealed: datatrove writes every step's attributes into ``executor.json``
and its logs, and a sealed queue prints as a count.
"""

from __future__ import annotations

import json

from datatrove.pipeline.base import PipelineStep

from genforget.requests.sources import Shard


class Sealed:
    """A payload that prints as its size: what datatrove's executor.json and logs see."""

    def __init__(self, payload: dict) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"<request queue: {len(self.payload['requests'])} request(s), sealed>"

    __str__ = __repr__


class LocateTaskError(RuntimeError):
    """A task failed; the message names the shard/line, never a record's text or an identifier."""


class LocateStep(PipelineStep):
    """Scan this task's shards, write ``<output>/<rank:05d>.json``."""

    name = "locate deletion requests"
    type = "genforget"

    def __init__(self, sealed: Sealed, shards: list[dict], output: str) -> None:
        super().__init__()
        self.sealed, self.shards, self.output = sealed, shards, output

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        try:
            self._scan(rank, world_size)
        except Exception as e:  # noqa: BLE001 - re-raised without its frames
            from genforget.config import UsageError

            # loguru prints the variables of every frame of a logged traceback: raise from a
            # frame that holds none of the scan's records.
            # UsageError and OSError messages name files and lines, not record contents.
            safe = isinstance(e, UsageError | OSError)
            msg = str(e) if safe else "(details withheld: they may quote a record)"
            raise LocateTaskError(f"task {rank}: {type(e).__name__}: {msg}") from None
        if data:
            yield from data

    def _scan(self, rank: int, world_size: int) -> None:
        import fsspec

        from genforget.requests.scan import Scanner

        p = self.sealed.payload
        start = _rss_mb("VmRSS")
        sc = Scanner(p["requests"], p["options"])
        for si, d in enumerate(self.shards):
            if si % world_size == rank:
                with self.track_time(unit="shard"):
                    sc.scan(Shard(**d), si)
                self.stat_update("shards")
        snap = sc.snapshot()
        snap["rss_mb"] = {"start": start, "peak": _rss_mb("VmHWM")}  # this worker process
        self.stat_update("records", value=snap["n_records"])
        self.stat_update("located", value=len(snap["located"]))
        self.stat_update("kept_by_prefilter", value=snap["kept"])
        self.stat_update("bytes", value=snap["bytes"], unit="task")
        fs, path = fsspec.core.url_to_fs(f"{self.output}/{rank:05d}.json")
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path + ".part", "w") as f:  # written whole, then renamed: never half a task
            json.dump(snap, f)
        fs.mv(path + ".part", path)


def _rss_mb(key: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process in MB (Linux; None elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
