"""Locate over a corpus that one process cannot scan in time: datatrove runs the scan.

``datatrove`` (Hugging Face's library for pretraining-scale data) splits the shards into tasks
and runs them on local processes (``LocalPipelineExecutor``), a Slurm cluster
(``SlurmPipelineExecutor``: one array job) or a Ray cluster (``RayPipelineExecutor``). Each task
runs :class:`~genforget.requests.locate_step.LocateStep` and writes its output; this module
plans the shards, starts the executor, waits for it and merges the outputs into exactly what
:func:`genforget.requests.locate` returns in one process (test: 1, 2 and 3 workers over mixed
shards give the same located records, spans, counts and retain sample).

Options (``--executor_options`` YAML, passed to the executor's constructor; besides them):

- ``work_dir``: where tasks write (default: a private temporary dir, local executor only;
  Slurm and Ray need a path every node sees). It holds the located records' texts until the
  merge, then is removed (``keep_work_dir: true`` keeps the logs; task outputs go anyway).
- ``tasks``: how many tasks (default: shards, at most 4 per worker);
- ``wait_s`` / ``poll_s`` (Slurm): how long to wait for the array job, how often to look.
- ``address`` (Ray): the cluster to join (default: the one ``ray.init()`` finds or starts).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import fields
from pathlib import Path

from genforget.config import UsageError
from genforget.requests.records import LocateResult, ScanOptions
from genforget.requests.request import Request

EXECUTORS = ("local", "slurm", "ray")


def parse_options(text: str | dict | None) -> dict:
    """``--executor_options``: a YAML mapping, inline or in a file."""
    import yaml

    if not text:
        return {}
    if isinstance(text, dict):
        return dict(text)
    src = Path(text)
    try:
        raw = src.read_text() if src.suffix in (".yaml", ".yml", ".json") and src.is_file() else text
        opts = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"--executor_options: not a YAML mapping or file ({type(e).__name__})") from e
    if not isinstance(opts, dict):
        raise UsageError("--executor_options: give a YAML mapping, e.g. '{tasks: 8, work_dir: /shared/x}'")
    return opts


def locate_any(
    requests: list[Request],
    data: str | Path,
    workers: int = 0,
    executor: str = "local",
    executor_options: str | dict | None = None,
    **kw,
) -> LocateResult:
    """:func:`~genforget.requests.locate` in this process (``workers == 0``, local executor, no
    options) or :func:`locate_distributed`; what ``genforget forget`` calls."""
    opts = parse_options(executor_options)
    if workers < 0:
        raise UsageError(f"--workers must be >= 0 (got {workers}; 0 = scan in this process)")
    if workers == 0 and executor == "local" and not opts:
        from genforget.requests.locate import locate

        return locate(requests, data, **kw)
    if executor == "local":
        workers = workers or 1
    return locate_distributed(requests, data, workers=workers or -1, executor=executor, options=opts, **kw)


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UsageError(f"{what} needs {module.split('.')[0]}: pip install 'genforget[scale]'") from e


def _fingerprint(requests: list[Request], shards: list, options: dict) -> str:
    body = json.dumps(
        [[r.id, r.kind, r.identifiers, r.documents, r.region] for r in requests]
        + [[s.to_dict() for s in shards], options],
        sort_keys=True,
        default=repr,  # a chat renderer: its source and template hash
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _executor(kind: str, step, tasks: int, workers: int, logs: str, opts: dict):
    common = {"pipeline": [step], "tasks": tasks, "logging_dir": logs}
    try:
        if kind == "local":
            from datatrove.executor import LocalPipelineExecutor

            # fork where there is one: a worker starts in milliseconds with the parent's imports
            # (forkserver/spawn re-import genforget and torch: ~5 s per run measured here).
            opts.setdefault("start_method", "fork" if sys.platform.startswith("linux") else "spawn")
            return LocalPipelineExecutor(**common, workers=workers, **opts)
        if kind == "slurm":
            from datatrove.executor import SlurmPipelineExecutor

            return SlurmPipelineExecutor(**common, workers=workers, **opts)
        _require("ray", "--executor ray")
        import ray
        from datatrove.executor.ray import RayPipelineExecutor

        if not ray.is_initialized():
            ray.init(address=opts.pop("address", None), log_to_driver=False)
        opts.pop("address", None)
        return RayPipelineExecutor(**common, workers=workers, **opts)
    except TypeError as e:  # an option the executor does not take
        raise UsageError(f"--executor_options: {e}") from e


def _url(fs, path: str) -> str:
    proto = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    return path if proto in ("file", "local") else fs.unstrip_protocol(path)


def _wait(fs, logs: str, tasks: int, wait_s: float, poll_s: float) -> None:
    """Slurm returns once the array job is queued: wait for every task's completion mark."""
    path = f"{logs}/completions"
    t0 = time.monotonic()
    while True:
        done = len(fs.ls(path)) if fs.exists(path) else 0
        if done >= tasks:
            return
        if time.monotonic() - t0 > wait_s:
            raise UsageError(
                f"--executor slurm: {done}/{tasks} tasks done after {wait_s:.0f}s; the job goes on: "
                f"rerun the same command with the same work_dir to merge once it has finished (logs: {logs})"
            )
        time.sleep(poll_s)


def locate_distributed(
    requests: list[Request],
    data: str | Path,
    *,
    workers: int = 2,
    executor: str = "local",
    options: dict | None = None,
    **scan_options,
) -> LocateResult:
    """:func:`~genforget.requests.locate` as a datatrove pipeline (see the module docstring).
    ``options``: the executor's (``tasks``, ``work_dir`` ...); ``scan_options``: the fields of
    :class:`~genforget.requests.records.ScanOptions`, as :func:`~genforget.requests.locate` takes."""
    import fsspec

    from genforget.requests.scan import Scanner, merge
    from genforget.requests.sources import plan_shards

    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)} (got {executor!r})")
    if workers < 1 and not (executor != "local" and workers == -1):
        raise UsageError(f"--workers must be >= 1 (got {workers})")
    _require("datatrove", f"--workers/--executor {executor}")
    from genforget.requests.locate_step import LocateStep, Sealed

    t0 = time.perf_counter()
    opts = dict(options or {})
    work, keep = opts.pop("work_dir", None), bool(opts.pop("keep_work_dir", False))
    wait_s, poll_s = float(opts.pop("wait_s", 7 * 24 * 3600)), float(opts.pop("poll_s", 30))
    if work is None and executor != "local":
        raise UsageError(
            f"--executor {executor} needs work_dir in --executor_options (storage every node sees)"
        )
    shards = plan_shards(data)
    tasks = int(opts.pop("tasks", min(len(shards), 4 * workers if workers > 0 else 1000)))
    if tasks < 1:
        raise UsageError(f"--executor_options: tasks must be >= 1 (got {tasks})")
    scan = ScanOptions(**scan_options)
    sc = Scanner(requests, scan)  # the queue is validated here, before any task starts
    temp = work is None
    work = tempfile.mkdtemp(prefix="genforget-locate-") if temp else str(work)
    fs, root = fsspec.core.url_to_fs(work)
    fs.makedirs(root, exist_ok=True)
    mark = f"{root}/fingerprint"
    fp = _fingerprint(
        requests, shards, {f.name: getattr(scan, f.name) for f in fields(scan)} | {"tasks": tasks}
    )
    if fs.exists(mark) and fs.cat_file(mark).decode() != fp:
        raise UsageError(f"work_dir {work} holds another locate run (other requests, data or options)")
    fs.pipe_file(mark, fp.encode())
    out, logs = f"{root}/tasks", f"{root}/logs"
    merged = False
    try:
        step = LocateStep(
            Sealed({"requests": requests, "options": scan}), [s.to_dict() for s in shards], _url(fs, out)
        )
        ex = _executor(executor, step, tasks, workers, _url(fs, logs), opts)
        try:
            ex.run()
        except Exception as e:  # noqa: BLE001 - a task's error, already sanitised by LocateStep
            raise UsageError(f"--executor {executor}: a locate task failed: {e} (logs: {logs})") from None
        if executor == "slurm":
            _wait(fs, logs, tasks, wait_s, poll_s)
        snaps = []
        for rank in range(tasks):
            if not fs.exists(f"{out}/{rank:05d}.json"):
                raise UsageError(f"--executor {executor}: task {rank} wrote no output (logs: {logs})")
            snaps.append(json.loads(fs.cat_file(f"{out}/{rank:05d}.json")))
        merged = True
    finally:
        # Task outputs hold located records' texts: they go with the merge (a failed run in a
        # work_dir of the user's keeps them so that the same command resumes and merges), and
        # so does Slurm's pickled executor, which holds the request queue.
        for p in (out, f"{logs}/executor.pik", f"{logs}/completions") if merged or temp else ():
            if fs.exists(p):
                fs.rm(p, recursive=True)
        if temp and not keep:
            shutil.rmtree(work, ignore_errors=True)
    res = merge(snaps, requests, sc)
    res.extra["task_rss_mb"] = [s.get("rss_mb") for s in snaps]
    res.seconds = time.perf_counter() - t0
    res.extra.update(workers=workers, executor=executor, tasks=tasks, shards=len(shards))
    if 0 < tasks < workers:  # an engine that cannot use what it was given says so
        res.extra["note"] = (
            f"{len(shards)} shard(s) make {tasks} task(s) for {workers} workers: "
            f"{workers - tasks} worker(s) idle; split the data into more shards"
        )
        warnings.warn(res.extra["note"], stacklevel=2)
    if keep or not temp:
        res.extra["logs"] = logs
    return res
