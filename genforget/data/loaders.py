"""Loaders that turn files and datasets into genforget examples (plain dicts).

- JSONL: one object a line, with ``text`` (+ optional ``spans``), ``prompt``/``target``,
  ``question``/``answer`` or ``messages`` (a chat, rendered later with the model's chat template:
  :mod:`genforget.lm.chat`).
- TOFU: the question/answer JSONL files (``forget10.jsonl`` ...) from a local dir, or the hub copy
  ``locuslab/TOFU`` through ``datasets`` where a user has access.
- ``datasets``: a ``Dataset`` (a ``DatasetDict``'s split), a ``save_to_disk`` dir (``<dir>:<split>``
  for a ``DatasetDict``), a parquet/CSV file, or a hub id ``<name>[:<config>]:<split>`` read with
  ``datasets.load_dataset`` (:func:`load_data_spec`; docs/data-formats.md).

Field mapping, every form alike: ``text`` (+ ``spans``), ``prompt`` + ``target``, ``question`` +
``answer``, ``prompt`` + ``value`` (a PII probe), or ``messages`` (a chat). Other columns are kept
and ignored; a row's empty (None) columns are dropped, as ``datasets`` fills a column a row lacks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXAMPLE_KEYS = (("text",), ("prompt", "target"), ("question", "answer"), ("prompt", "value"))


def fingerprint(examples: list[dict]) -> str:
    """SHA-256 of the examples: a record can prove *which* data was forgotten without holding it."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex, sort_keys=True).encode())
    return h.hexdigest()


def _check(ex: Any, where: str) -> dict:
    if isinstance(ex, dict) and ex.get("messages") is not None:
        from genforget.lm.chat import check_messages

        check_messages(ex["messages"], where)
        return ex
    if not isinstance(ex, dict) or not any(all(k in ex for k in keys) for keys in EXAMPLE_KEYS):
        got = sorted(ex) if isinstance(ex, dict) else type(ex).__name__
        raise ValueError(
            f"{where}: expected an object with 'text', 'prompt'+'target', 'question'+'answer' or "
            f"'messages'; got {got}"
        )
    keys = next(keys for keys in EXAMPLE_KEYS if all(k in ex for k in keys))
    for k in keys:
        if not isinstance(ex[k], str):
            raise ValueError(f"{where}: {k!r} must be a string (got {type(ex[k]).__name__})")
    if not "".join(ex[k] for k in keys).strip():
        raise ValueError(f"{where}: {'+'.join(keys)} is empty or whitespace only; remove the line")
    if "spans" in ex and ex["spans"] is not None:
        _check_spans(ex, where)
    return ex


def _check_spans(ex: dict, where: str) -> None:
    """``spans``: a list of ``[start, end)`` character offsets into ``text`` with 0 <= start < end <= len."""
    if "text" not in ex:
        raise ValueError(f"{where}: 'spans' goes with 'text' (prompt/target examples derive their span)")
    spans, n = ex["spans"], len(ex["text"])
    if not isinstance(spans, list | tuple) or not spans:
        raise ValueError(f"{where}: 'spans' must be a non-empty list of [start, end] pairs")
    for sp in spans:
        ok = isinstance(sp, list | tuple) and len(sp) == 2 and all(type(v) is int for v in sp)
        if not ok:
            raise ValueError(f"{where}: span {sp!r} is not a [start, end] pair of integers")
        if not 0 <= sp[0] < sp[1] <= n:
            raise ValueError(
                f"{where}: span {list(sp)} is out of range for a text of {n} characters "
                "(need 0 <= start < end <= len(text))"
            )


def load_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON Lines file of examples; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    out = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{n}: not UTF-8 text (a binary file?); give a JSON Lines file"
                ) from e
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from e
                out.append(_check(obj, f"{path}:{n}"))
    return out


def load_tofu(source: str | Path, split: str = "forget10") -> list[dict]:
    """TOFU question/answer pairs of ``split``: ``builtin`` (the copy packaged with genforget), a
    local dir of JSONL files, else the hub dataset id ``source`` (e.g. ``locuslab/TOFU``) through
    ``datasets``."""
    from genforget.data.packaged import BUILTIN, tofu_split

    if str(source) == BUILTIN:
        return [_check(row, f"tofu:builtin:{split} row {i}") for i, row in enumerate(tofu_split(split))]
    local = Path(source) / f"{split}.jsonl"
    if local.is_file():
        return load_jsonl(local)
    # Issue 27: a local dir may also hold the split in any layout `datasets` writes (_local_split).
    root = Path(source)
    if root.is_dir():
        return _local_split(root, split)
    if str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:  # a path, not a hub id
        raise FileNotFoundError(f"TOFU dir not found: {source}")
    from datasets import load_dataset

    return from_dataset(load_dataset(str(source), split, split="train"))


def _local_split(root: Path, split: str) -> list[dict]:
    """``split`` of a local TOFU dir: ``<split>.jsonl`` / ``<split>.json`` (JSON Lines, TOFU's own
    files), or a ``<split>/`` dir in any layout ``datasets`` writes: ``save_to_disk`` (a
    ``Dataset``, or a ``DatasetDict`` whose ``train`` split is read), the hub's parquet shards, or
    the ``load_dataset`` cache's arrow files; or ``root`` is one ``save_to_disk``'d
    ``DatasetDict`` with the split as a key."""
    for name in (f"{split}.jsonl", f"{split}.json"):
        if (root / name).is_file():
            return load_jsonl(root / name)
    if (root / split).is_dir():
        return from_dataset(_dataset_dir(root / split), f"{root / split}")
    if (root / "dataset_dict.json").is_file():
        from datasets import load_from_disk

        dd = load_from_disk(str(root))
        if split in dd:
            return from_dataset(dd[split], f"{root}[{split}]")
    have = sorted({p.stem for p in root.glob("*.json*")} | {p.name for p in root.iterdir() if p.is_dir()})
    raise FileNotFoundError(
        f"TOFU split {split!r} not found in {root}; available: {', '.join(have) or 'none'}"
    )


def _dataset_dir(d: Path):
    """The rows of one split dir in a ``datasets`` layout (see :func:`load_tofu`)."""
    import datasets

    if (d / "dataset_dict.json").is_file() or (d / "state.json").is_file():
        ds = datasets.load_from_disk(str(d))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
        return ds
    for pattern in ("*.parquet", "*.arrow"):
        files = sorted(d.rglob(pattern))
        if files:
            # One version only: a load_dataset cache can hold several fingerprint dirs.
            newest = max({f.parent for f in files}, key=lambda p: p.stat().st_mtime)
            files = [f for f in files if f.parent == newest and "-test" not in f.name]
            if pattern == "*.parquet":
                return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
            return datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in files])
    files = sorted(d.glob("*.json*"))
    if files:
        return [row for f in files for row in load_jsonl(f)]
    raise FileNotFoundError(f"{d}: no dataset files (save_to_disk, parquet, arrow or JSON Lines)")


KNOWN_FIELDS = "'text', 'prompt'+'target', 'question'+'answer', 'prompt'+'value' or 'messages'"


def _check_columns(columns: list[str], name: str) -> None:
    """A dataset none of whose columns genforget reads: say which it has and how to map them."""
    if "messages" in columns or any(all(k in columns for k in keys) for keys in EXAMPLE_KEYS):
        return
    raise ValueError(
        f"{name}: a dataset with columns {sorted(columns)} has none genforget reads ({KNOWN_FIELDS}); "
        f"rename one, e.g. ds.rename_column({sorted(columns)[0] if columns else 'x'!r}, 'text')"
    )


def from_dataset(ds: Iterable[dict], name: str = "dataset") -> list[dict]:
    """Rows of a ``datasets.Dataset`` (or any iterable of dicts) as checked examples; a row's
    None-valued columns are dropped (``datasets`` fills a column missing from a row with None)."""
    columns = getattr(ds, "column_names", None)
    if isinstance(columns, list):
        _check_columns(columns, name)
    return [
        _check({k: v for k, v in dict(row).items() if v is not None}, f"{name} row {i}")
        for i, row in enumerate(ds)
    ]


def _is_datasets(data: Any, cls: str) -> bool:
    """Whether ``data`` is a ``datasets.<cls>`` (without importing ``datasets`` for a plain list)."""
    return any(t.__module__.startswith("datasets") and t.__name__ == cls for t in type(data).__mro__)


def as_examples(data: Any, name: str = "data") -> list[dict]:
    """Normalise user input: a list of dicts or strings, a ``datasets.Dataset`` (one split of a
    ``DatasetDict``), or a string :func:`load_data_spec` reads (JSONL path, dataset dir,
    ``<dir>:<split>``, hub ``<name>:<split>``, ``pii:<split>``, ``tofu:<src>:<split>``)."""
    if data is None:
        return []
    if isinstance(data, (str, Path)):
        return load_data_spec(str(data), name=name)
    if _is_datasets(data, "DatasetDict") or _is_datasets(data, "IterableDatasetDict"):
        raise ValueError(
            f"{name}: a DatasetDict holds several splits ({', '.join(data)}); pass one, e.g. "
            f"dd[{next(iter(data), 'train')!r}] (or '<dir>:<split>' for a saved one)"
        )
    if _is_datasets(data, "Dataset") or _is_datasets(data, "IterableDataset"):
        return from_dataset(data, name)
    rows = list(data)
    return [
        {"text": r} if isinstance(r, str) else _check(dict(r), f"{name}[{i}]") for i, r in enumerate(rows)
    ]


def load_data_spec(
    spec: str,
    n_people: int = 200,
    n_passages: int = 50,
    forget_frac: float = 0.1,
    seed: int = 0,
    name: str = "data",
) -> list[dict]:
    """Examples named by a data string (a recipe's ``forget_data`` / ``retain_data`` /
    ``calibration_data``, the CLI's flags, or a string given to the API), tried in this order:

    - ``pii:forget`` / ``pii:retain`` / ``pii:holdout`` / ``pii:calibration``: the built-in corpus
      (rebuilt from its seed; forget and calibration examples carry name/PII spans, retain and
      holdout are whole texts);
    - ``tofu:<dir or hub id>:<split>``: TOFU question/answer pairs (``tofu:builtin:<split>``: the
      copy packaged with genforget);
    - an existing file: JSON Lines (``.jsonl`` / ``.json``), or ``.parquet`` / ``.csv`` read with
      ``datasets``;
    - an existing dir: a ``datasets`` ``save_to_disk`` dir (a ``DatasetDict`` with one split, or
      ``<dir>:<split>`` to pick one), parquet/arrow shards, or JSON Lines files;
    - ``<name>:<split>`` or ``<name>:<config>:<split>``: a hub dataset through
      ``datasets.load_dataset(name, config, split=split)`` (the split may slice: ``train[:100]``).
    """
    if spec.startswith("pii:"):
        from genforget.data.pii import build_pii_corpus

        split = spec.split(":", 1)[1]
        if split not in ("forget", "retain", "holdout", "calibration"):
            raise ValueError(f"data spec {spec!r}: split must be forget, retain, holdout or calibration")
        corpus = build_pii_corpus(n_people, n_passages, forget_frac, seed=seed)
        if split == "calibration":
            return corpus.calibration_examples()
        return corpus.unlearn_examples(split) if split == "forget" else corpus.full_text_examples(split)
    if spec.startswith("tofu:"):
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f"data spec {spec!r}: expected tofu:<dir or hub id>:<split>")
        return load_tofu(parts[1], parts[2])
    path = Path(spec)
    if path.is_file():
        if path.suffix in (".parquet", ".csv"):
            import datasets

            builder = path.suffix.lstrip(".")
            return from_dataset(datasets.load_dataset(builder, data_files=str(path), split="train"), spec)
        return load_jsonl(path)
    if path.is_dir():
        return from_dataset(_saved_dataset(path, None), spec)
    # A split may slice (`train[:100]`): the colon inside the brackets is not a separator.
    cut = spec.rfind("[") if spec.endswith("]") else len(spec)
    head, sep, split = spec[:cut].rpartition(":")
    split += spec[cut:]
    if sep and Path(head).is_dir():
        return from_dataset(_saved_dataset(Path(head), split), spec)
    file_like = Path(head).suffix in (".jsonl", ".json", ".parquet", ".csv", ".arrow")
    if sep and head and split and not file_like and not head.startswith((".", "/", "~")):
        from datasets import load_dataset

        hub, _, config = head.partition(":")
        try:
            ds = load_dataset(hub, config or None, split=split)
        except Exception as e:  # offline, gated, or no such dataset/split: say what was asked
            raise FileNotFoundError(
                f"{name}: {spec!r} read as hub dataset {hub!r}"
                + (f" (config {config!r})" if config else "")
                + f", split {split!r}: {type(e).__name__}: {e}"
            ) from e
        return from_dataset(ds, spec)
    raise FileNotFoundError(
        f"{name}: data file not found: {spec!r}; give a JSONL/parquet/CSV file, a dataset dir (save_to_disk), "
        "<dir>:<split>, a hub dataset <name>:<split>, pii:<split> or tofu:<dir or hub id>:<split>"
    )


def _saved_dataset(d: Path, split: str | None) -> Any:
    """One split of a dataset dir: a ``save_to_disk`` ``Dataset`` (no split to give), a
    ``DatasetDict`` (``split``, or its only one), or parquet/arrow/JSON Lines files (no split)."""
    import datasets

    if (d / "dataset_dict.json").is_file():
        dd = datasets.load_from_disk(str(d))
        if split is None and len(dd) == 1:
            split = next(iter(dd))
        if split not in dd:
            raise ValueError(
                f"{d}: a DatasetDict with splits {', '.join(dd)}; name one: {d}:{next(iter(dd))}"
                + ("" if split is None else f" (no split {split!r})")
            )
        return dd[split]
    if split is not None:
        raise ValueError(f"{d}:{split}: {d} is not a saved DatasetDict; drop ':{split}'")
    return _dataset_dir(d)
