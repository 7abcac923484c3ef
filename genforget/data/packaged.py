"""Data that ships inside the package: TOFU (MIT) and tiny Shakespeare (public domain).

The files are xz-compressed under ``genforget/data/files/`` and read through
:mod:`importlib.resources`, so a wheel install finds them wherever it lives. Every read is
checked against the SHA-256 of the uncompressed bytes in the folder's ``SHA256SUMS``: a damaged
or edited copy is an error, not a silently different benchmark.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

BUILTIN = "builtin"  # the source name in data specs: tofu:builtin:<split>, builtin:shakespeare


def _folder(name: str) -> Traversable:
    return files("genforget.data").joinpath("files", name)


@cache
def _sums(name: str) -> dict[str, str]:
    lines = _folder(name).joinpath("SHA256SUMS").read_text().splitlines()
    return {fname: digest for digest, fname in (line.split() for line in lines if line.strip())}


def read_bytes(folder: str, filename: str) -> bytes:
    """The uncompressed bytes of ``folder/filename`` (stored as ``filename.xz``), hash-checked."""
    sums = _sums(folder)
    if filename not in sums:
        raise FileNotFoundError(f"no packaged file {folder}/{filename}; available: {', '.join(sorted(sums))}")
    data = lzma.decompress(_folder(folder).joinpath(filename + ".xz").read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != sums[filename]:
        raise ValueError(
            f"packaged file {folder}/{filename} is damaged: SHA-256 {digest[:12]}... differs from "
            f"SHA256SUMS ({sums[filename][:12]}...); reinstall genforget"
        )
    return data


def tofu_splits() -> list[str]:
    """Names of the packaged TOFU splits (``full``, ``forget10``, ``retain90`` ...)."""
    return sorted(f.removesuffix(".jsonl") for f in _sums("tofu"))


def tofu_split(split: str) -> list[dict]:
    """The rows of a packaged TOFU split (``question``, ``answer`` and, for ``*_perturbed``
    splits, ``paraphrased_answer`` / ``perturbed_answer``)."""
    if split not in tofu_splits():
        raise FileNotFoundError(
            f"TOFU split {split!r} is not packaged; available: {', '.join(tofu_splits())}"
        )
    text = read_bytes("tofu", f"{split}.jsonl").decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def shakespeare_text() -> str:
    """The tiny Shakespeare text (nine plays, public domain)."""
    return read_bytes("shakespeare", "input.txt").decode("utf-8")
