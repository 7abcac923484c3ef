"""Locate a taken-down image among a model's training images: exact and near-duplicate copies.

A takedown names image *files*, usually not the exact bytes that were trained on: the training
copy was resized, re-encoded or slightly edited. Each image (takedown and training record) gets
a perceptual hash, ``imagehash.phash`` (the DCT hash of a 32x32 grey thumbnail, low 8x8
frequencies against their median: 64 bits that survive resizing and JPEG; the takedown file is
hashed whole and as its centre square, the crop text-to-image training applies), and a record is a
copy when the Hamming distance of either is at most ``max_distance`` (10 of 64 bits by default, the
``imagehash`` README's range for "likely the same image"; the tests measure precision and
recall on resized, recompressed and brightened copies against the other works and the
background). The records found give the forget set, and their captions are the prompts whose
generations are checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAX_DISTANCE = 10


def _imagehash():  # noqa: ANN202 - the module
    try:
        import imagehash
    except ImportError as e:
        raise ImportError("locating images needs imagehash: pip install 'genforget[image]'") from e
    return imagehash


def _pil(image: torch.Tensor | np.ndarray | str | Path):  # noqa: ANN202 - a PIL image
    from PIL import Image

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"takedown image not found: {path}")
        return Image.open(path).convert("RGB")
    if isinstance(image, torch.Tensor):  # [3, H, W] in [-1, 1]
        image = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.asarray(image)).convert("RGB")


def phash(image: torch.Tensor | np.ndarray | str | Path, centre_crop: bool = False) -> str:
    """The 64-bit perceptual hash of an image (a file, an ``[H, W, 3]`` uint8 array or a
    ``[3, H, W]`` tensor in [-1, 1]) as 16 hex digits; ``centre_crop``: of its centre square."""
    img = _pil(image)
    if centre_crop:
        s = min(img.size)
        left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
        img = img.crop((left, top, left + s, top + s))
    return str(_imagehash().phash(img))


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of the same length."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@dataclass
class Located:
    """A takedown image's matches: training ``rows`` whose hash is within ``max_distance``, the
    ``distances`` of those rows, and the takedown's own ``hash`` (for the record: no pixels)."""

    hash: str
    rows: list[int]
    distances: list[int]


def locate_images(
    takedown: list[torch.Tensor | np.ndarray | str | Path],
    training: torch.Tensor,
    max_distance: int = MAX_DISTANCE,
    training_hashes: list[str] | None = None,
) -> list[Located]:
    """For each takedown image, the rows of ``training`` (``[N, 3, H, W]`` in [-1, 1]) that are
    copies of it by perceptual hash. ``training_hashes``: precomputed :func:`phash` of the rows."""
    if not 0 <= max_distance < 64:
        raise ValueError(f"max_distance must be in 0..63 bits (got {max_distance})")
    hashes = training_hashes if training_hashes is not None else [phash(x) for x in training]
    out = []
    for img in takedown:
        # Text-to-image training centre-crops to a square (LAION / Stable Diffusion preprocessing),
        # so a non-square work is trained as its crop: match either the file or its centre square.
        h, hc = phash(img), phash(img, centre_crop=True)
        d = [min(hamming(h, t), hamming(hc, t)) for t in hashes]
        rows = [i for i, v in enumerate(d) if v <= max_distance]
        out.append(Located(h, rows, [d[i] for i in rows]))
    return out


def precision_recall(found: list[int], truth: list[int]) -> tuple[float, float]:
    """``(precision, recall)`` of found rows against the true copies (1.0 when both are empty)."""
    f, t = set(found), set(truth)
    hit = len(f & t)
    return (hit / len(f) if f else float(not t)), (hit / len(t) if t else 1.0)
