"""Loader for MUSE-format data (Shi et al. 2024, arXiv:2407.06460): a local directory laid out as
the benchmark's repository, or a hub dataset id (``muse-bench/MUSE-News``, ``muse-bench/MUSE-Books``)
through ``datasets`` where the hub is reachable.

Local layout: one folder per subset, one file per split (the file stem is the split name)::

    raw/       forget.json, retain1.json, retain2.json, holdout.json (or .txt)   -> texts
    verbmem/   forget.json: [{"prompt", "gt"}]                                  -> prompt/target
    knowmem/   forget_qa.json, retain_qa.json, *_icl.json: [{"question", "answer"}]
    privleak/  forget.json, retain.json, holdout.json                           -> texts

A ``.json`` file holds a list (of strings, or of objects); ``.jsonl`` one object a line; a
``.txt`` file is one whole text. Text items may be strings or ``{"text": ...}`` objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SUBSETS = ("raw", "verbmem", "knowmem", "privleak")


@dataclass
class MuseData:
    """MUSE splits as genforget examples, ``subset -> split -> list``.

    ``raw`` / ``privleak``: ``{"text"}``; ``verbmem``: ``{"prompt", "target"}``;
    ``knowmem``: ``{"question", "answer"}``.
    """

    raw: dict[str, list[dict]] = field(default_factory=dict)
    verbmem: dict[str, list[dict]] = field(default_factory=dict)
    knowmem: dict[str, list[dict]] = field(default_factory=dict)
    privleak: dict[str, list[dict]] = field(default_factory=dict)


def _item(subset: str, obj, where: str) -> dict:
    if subset in ("raw", "privleak"):
        if isinstance(obj, str):
            return {"text": obj}
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            return {"text": obj["text"]}
        raise ValueError(f"{where}: expected a string or an object with 'text'")
    if subset == "verbmem":
        if isinstance(obj, dict) and "prompt" in obj and ("gt" in obj or "target" in obj):
            return {"prompt": obj["prompt"], "target": obj.get("gt", obj.get("target"))}
        raise ValueError(f"{where}: expected an object with 'prompt' and 'gt'")
    if isinstance(obj, dict) and "question" in obj and "answer" in obj:
        return {"question": obj["question"], "answer": obj["answer"]}
    raise ValueError(f"{where}: expected an object with 'question' and 'answer'")


def _read(path: Path) -> list:
    if path.suffix == ".txt":
        return [path.read_text()]
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from e
        return rows
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list")
    return data


def load_muse_dir(root: str | Path) -> MuseData:
    """Every subset/split found under a local MUSE-format directory ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MUSE directory not found: {root}")
    out = MuseData()
    for subset in SUBSETS:
        folder = root / subset
        if not folder.is_dir():
            continue
        splits = getattr(out, subset)
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".json", ".jsonl", ".txt"):
                continue
            if path.stem in splits:
                raise ValueError(f"{folder}: split {path.stem!r} given by more than one file")
            splits[path.stem] = [_item(subset, obj, f"{path}[{i}]") for i, obj in enumerate(_read(path))]
    if not any(getattr(out, s) for s in SUBSETS):
        raise FileNotFoundError(f"{root}: no MUSE subset folder ({', '.join(SUBSETS)}) with .json/.txt files")
    return out


def load_muse(source: str | Path) -> MuseData:
    """A local MUSE-format directory, else a hub dataset id loaded with ``datasets`` (one config
    per subset, e.g. ``muse-bench/MUSE-News``); subsets the hub copy lacks are left empty."""
    if Path(source).is_dir():
        return load_muse_dir(source)
    from datasets import load_dataset

    out = MuseData()
    for subset in SUBSETS:
        try:
            dd = load_dataset(str(source), subset)
        except ValueError:  # the hub copy has no such config
            continue
        getattr(out, subset).update(
            {
                split: [
                    _item(subset, dict(row), f"{source}/{subset}/{split}[{i}]") for i, row in enumerate(ds)
                ]
                for split, ds in dd.items()
            }
        )
    return out
