"""An image–caption training set read from disk, at a pipeline's resolution, for image takedowns.

Two layouts, both Hugging Face ``datasets`` conventions:

* an **image folder**: image files plus ``metadata.jsonl`` / ``metadata.csv`` whose ``file_name``
  column names each file and whose caption column (``text`` by default) is its caption, read with
  ``datasets``' ``imagefolder`` builder (streamed: nothing cached or written);
* a dataset saved with ``save_to_disk`` with an ``image`` column and the caption column.

Each image is centre-cropped to a square and resized to the pipeline's resolution (the
preprocessing of Stable Diffusion training); each record keeps the SHA-256 of its file's bytes,
so a takedown that names a hash finds the exact file.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genforget.config import UsageError
from genforget.diffusion.works import WorksData, to_tensor_image


@dataclass
class ImageCaptionData:
    """``data``: images ``[N, 3, S, S]`` in [-1, 1] and their captions (``work_of`` unknown:
    ``None``); ``sha256``: of each record's file bytes."""

    data: WorksData
    sha256: list[str]


def _rows(path: Path, field: str):  # noqa: ANN202 - an iterable of dict rows
    import datasets

    if (path / "dataset_info.json").exists() or (path / "state.json").exists():
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    elif any((path / m).exists() for m in ("metadata.jsonl", "metadata.csv", "metadata.parquet")):
        ds = datasets.load_dataset("imagefolder", data_dir=str(path), split="train", streaming=True)
    else:
        raise UsageError(
            f"--data {path}: not an image–caption dataset: give a folder of images with a metadata.jsonl "
            "('file_name' and a caption column per line) or a dataset saved with save_to_disk"
        )
    names = ds.column_names or []
    if "image" not in names or field not in names:
        raise UsageError(
            f"--data {path}: needs an 'image' column and the caption column {field!r} (--text_field); "
            f"it has {names}"
        )
    return ds.cast_column("image", datasets.Image(decode=False))


def load_image_captions(path: str | Path, size: int, field: str = "text") -> ImageCaptionData:
    """Read every record of the dataset at ``path`` (see the module docstring) at ``size`` pixels."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"--data {path}: not a directory (an image folder or a saved dataset)")
    images, captions, shas = [], [], []
    for i, row in enumerate(_rows(p, field)):
        img, cap = row["image"], row[field]
        raw = img.get("bytes") or Path(img["path"]).read_bytes()
        if not isinstance(cap, str) or not cap.strip():
            raise UsageError(f"--data {path}: record {i} has no caption in {field!r}")
        try:
            rgb = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        except UnidentifiedImageError as e:
            raise UsageError(f"--data {path}: record {i} is not a readable image") from e
        images.append(to_tensor_image(rgb, size))
        captions.append(cap)
        shas.append(hashlib.sha256(raw).hexdigest())
    if not images:
        raise UsageError(f"--data {path}: no records")
    return ImageCaptionData(WorksData(torch.stack(images), captions, [None] * len(captions)), shas)
