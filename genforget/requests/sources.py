"""Where TRAIN lives: ``--data`` resolved into an ordered list of shards, and raw readers for them.

``--data`` is a file, a directory (walked recursively), a glob of shards (``runs/x/*.parquet``),
a ``datasets`` dataset saved with ``save_to_disk``, or any of these behind an fsspec URL
(``s3://bucket/corpus/*.jsonl.gz``, ``hf://datasets/...``). Shard formats: ``.jsonl`` (also
``.jsonl.gz`` / ``.jsonl.zst``, ``.json.gz``), ``.parquet``, ``.txt`` (one record per file) and the
Arrow files of a saved dataset.

The order of the list and each shard's record-id prefix are fixed here, once, by the process
that plans the run: the single-process locate and every distributed task number records the
same way (``<prefix>:<line>`` for JSONL, ``<prefix>:<row>`` (1-based) for parquet,
``<split>:<index>`` (0-based) for a saved dataset, the relative path for a ``.txt``).

The readers hand back raw bytes (JSONL: blocks of whole lines; parquet/Arrow: a column's UTF-8
buffer and its offsets) so the prefilter can run before anything is decoded (see
:mod:`genforget.requests.scan`).
"""

from __future__ import annotations

import glob as _glob
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from genforget.config import UsageError

BLOCK = 8 << 20  # bytes of JSONL per block: large enough that the C scans dominate
ROWS = 1 << 15  # rows per parquet / Arrow batch (~7 MB of text at 225 bytes a record)
SUFFIXES = {
    ".jsonl": ("jsonl", None),
    ".json.gz": ("jsonl", "gzip"),
    ".jsonl.gz": ("jsonl", "gzip"),
    ".jsonl.zst": ("jsonl", "zstd"),
    ".jsonl.zstd": ("jsonl", "zstd"),
    ".parquet": ("parquet", None),
    ".txt": ("txt", None),
}
_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
HELP = "a JSONL/parquet/txt file, a dir or glob of shards, a saved dataset, or an fsspec URL"


@dataclass(frozen=True)
class Shard:
    """One input file. ``prefix`` starts its record ids; ``first`` is the number of its first
    record (1 for JSONL lines and parquet rows, the running index for a dataset's Arrow file)."""

    url: str
    prefix: str
    fmt: str  # jsonl | parquet | arrow | txt
    compression: str | None = None
    first: int = 1
    size: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _kind(name: str) -> tuple[str, str | None] | None:
    low = name.lower()
    for suf, kind in SUFFIXES.items():
        if low.endswith(suf):
            return kind
    return None


def _fs(data: str):
    """``(filesystem, path)`` for a local path or an fsspec URL."""
    import fsspec

    if "://" in data:
        return fsspec.core.url_to_fs(data)
    return fsspec.filesystem("file"), str(Path(data).absolute())


def _url(fs, path: str) -> str:
    proto = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    return path if proto in ("file", "local") else fs.unstrip_protocol(path)


def _dataset_shards(fs, root: str) -> list[Shard]:
    """The Arrow files of a saved ``Dataset`` / ``DatasetDict``, in split and file order."""
    import pyarrow as pa

    def files(split_dir: str) -> list[str]:
        state = json.loads(fs.cat_file(f"{split_dir}/state.json"))
        return [f"{split_dir}/{f['filename']}" for f in state["_data_files"]]

    if fs.isfile(f"{root}/dataset_dict.json"):
        splits = json.loads(fs.cat_file(f"{root}/dataset_dict.json"))["splits"]
        parts = [(s, files(f"{root}/{s}")) for s in splits]
    else:
        parts = [("train", files(root))]
    out = []
    for split, paths in parts:
        n = 0
        for p in paths:
            with fs.open(p, "rb") as f:
                rows = pa.ipc.open_stream(f).read_all().num_rows
            out.append(Shard(_url(fs, p), split, "arrow", None, n, fs.size(p)))
            n += rows
    return out


def plan_shards(data: str | Path) -> list[Shard]:
    """Every shard of ``data`` in a fixed order (see the module docstring)."""
    data = str(data)
    if not data:
        raise UsageError(f"--data is required ({HELP})")
    fs, path = _fs(data)
    if _glob.has_magic(path):
        base = path.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
        paths = sorted(p for p in fs.glob(path) if fs.isfile(p))
        if not paths:
            raise UsageError(f"--data {data}: the pattern matches no file")
    elif fs.isfile(path):
        base, paths = path.rsplit("/", 1)[0], [path]
    elif fs.isdir(path):
        if any(fs.isfile(f"{path}/{m}") for m in _MARKERS):
            return _dataset_shards(fs, path)
        base = path
        paths = sorted(p for p in fs.find(path) if _kind(p) is not None)
        if not paths:
            raise UsageError(f"--data {data}: no .jsonl(.gz/.zst), .parquet or .txt files in this directory")
    else:
        raise UsageError(f"--data: not found: {data} ({HELP})")
    out = []
    for p in paths:
        kind = _kind(p)
        if kind is None:
            if len(paths) == 1:  # a single file is JSONL whatever its name (as before)
                kind = ("jsonl", None)
            else:
                raise UsageError(f"--data {data}: {p}: unknown format (use {', '.join(SUFFIXES)})")
        rel = p[len(base) + 1 :] if p.startswith(base + "/") else p.rsplit("/", 1)[-1]
        out.append(Shard(_url(fs, p), rel, kind[0], kind[1], 1, fs.size(p) or 0))
    return out


def open_shard(shard: Shard):
    if "://" in shard.url:
        import fsspec

        return fsspec.open(shard.url, "rb").open()
    return open(shard.url, "rb")  # noqa: SIM115 - closed by the caller


def _decompressed(f, compression: str | None):
    if compression == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=f)
    if compression == "zstd":
        try:
            import zstandard
        except ImportError as e:
            raise UsageError("--data: .zst shards need zstandard: pip install 'genforget[scale]'") from e
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    return f


def jsonl_blocks(shard: Shard, block: int = BLOCK) -> Iterator[bytes]:
    """Blocks of whole lines (each ending with a newline) of a JSONL shard, decompressed."""
    with open_shard(shard) as raw:
        f = _decompressed(raw, shard.compression)
        rest = b""
        while True:
            chunk = f.read(block)
            if not chunk:
                break
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                rest = chunk
                continue
            rest = chunk[cut:]
            yield chunk[:cut]
        if rest:
            yield rest + b"\n"


def column_batches(shard: Shard, text_field: str) -> Iterator[tuple[object, object]]:
    """``(batch, schema)`` of a parquet / Arrow shard: record batches of ``ROWS`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open_shard(shard) as f:
        if shard.fmt == "parquet":
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            cols = [text_field] if text_field in names else None
            for b in pf.iter_batches(batch_size=ROWS, columns=cols):
                yield b, pf.schema_arrow
        else:
            reader = pa.ipc.open_stream(f)
            for b in reader:
                yield b, reader.schema


def shard_bytes(shards: list[Shard]) -> int:
    return sum(s.size for s in shards)
