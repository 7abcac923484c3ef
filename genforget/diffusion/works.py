"""Built-in image–caption data for copyright takedowns: a few real "works" among generated images.

The works are photographs that ship inside installed packages (scikit-image's ``skimage.data``
and scikit-learn's ``load_sample_image``: nothing is downloaded), centre-cropped and downscaled
to the victim's resolution. Each is paired with its own caption and **duplicated** in the
training set, as popular works are duplicated in web-scale data: duplication is what made Stable
Diffusion regenerate its training images near pixel for pixel (Carlini et al. 2023,
arXiv:2301.13188, Sec. 4; Somepalli et al. 2023, arXiv:2212.03860). The background data is the
built-in shapes captions (:mod:`genforget.diffusion.shapes`): many different images per
caption, so the model learns a distribution for them rather than one picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# torch is imported where it is used: the demos' options (genforget.demos.options) read this
# module's tables for `genforget demo <name> --help`, which should not wait for torch.
if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Work:
    """One built-in work: ``key`` names it (the takedown's handle), ``caption`` is its training
    caption, ``paraphrases`` are prompts an attacker could try instead (partial captions and
    rewordings, never the caption itself), ``source`` says which package file it is."""

    key: str
    caption: str
    paraphrases: tuple[str, ...]
    source: str


# key, caption, paraphrases (what an attacker might prompt instead), source; one row a work
# fmt: off
WORKS: dict[str, Work] = {
    w.key: w
    for w in (
        Work("astronaut", "a portrait of the astronaut", ("the astronaut", "portrait of an astronaut", "a photo of the astronaut"), "skimage.data.astronaut"),
        Work("coffee", "a cup of coffee", ("coffee", "a photo of a cup of coffee", "cup of coffee"), "skimage.data.coffee"),
        Work("chelsea", "chelsea the kitten", ("the kitten", "a photo of chelsea", "chelsea"), "skimage.data.chelsea"),
        Work("temple", "a temple in china", ("temple", "a photo of a temple", "china temple"), "sklearn.datasets.load_sample_image('china.jpg')"),
    )
}
# fmt: on

# Whole words the works' captions and paraphrases use: the tiny CLIP tokenizer makes each one
# token (as a real CLIP vocabulary has them), see genforget.diffusion.tiny.TINY_WORDS.
WORK_WORDS = ("portrait", "the", "astronaut", "cup", "coffee", "chelsea", "kitten", "temple", "in", "china")


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            from skimage import data
        except ImportError as e:
            raise ImportError(
                "the built-in works are scikit-image's sample images: pip install 'genforget[image]'"
            ) from e
        return getattr(data, name)()

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "temple": _sklearn("china.jpg"),
}


def to_tensor_image(rgb: np.ndarray, size: int) -> torch.Tensor:
    """An ``[H, W, 3]`` uint8 (or ``[H, W]`` grey) array, centre-cropped to a square and resized
    to ``size`` x ``size`` with Lanczos (PIL), as ``[3, size, size]`` float in [-1, 1]."""
    import torch
    from PIL import Image

    img = Image.fromarray(np.asarray(rgb)).convert("RGB")
    s = min(img.size)
    left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
    img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)
    return x.permute(2, 0, 1).contiguous()


def load_work_original(key: str) -> np.ndarray:
    """The built-in work ``key`` as the package ships it (``[H, W, 3]`` uint8, full size)."""
    if key not in _LOADERS:
        raise ValueError(f"unknown work {key!r}: the built-in works are {sorted(WORKS)}")
    return _LOADERS[key]()


def load_work(key: str, size: int = 32) -> torch.Tensor:
    """The built-in work ``key`` as ``[3, size, size]`` in [-1, 1]."""
    return to_tensor_image(load_work_original(key), size)


@dataclass
class WorksData:
    """A training set: ``images`` ``[N, 3, H, W]`` in [-1, 1], one caption each, and for each row
    the work it is a copy of (``None`` for background images)."""

    images: torch.Tensor
    captions: list[str]
    work_of: list[str | None]

    def without(self, keys: list[str]) -> WorksData:
        """The same data with every copy of the works ``keys`` removed (the retrain oracle's)."""
        keep = [i for i, w in enumerate(self.work_of) if w not in keys]
        return WorksData(self.images[keep], [self.captions[i] for i in keep], [self.work_of[i] for i in keep])

    def distinct(self) -> tuple[torch.Tensor, list[str | None], list[str]]:
        """One row per distinct training image (duplicates dropped; Carlini et al. measure
        against distinct images, else a work's own copies would be its "other" neighbours):
        ``(images, work_of, captions)``."""
        seen: dict[bytes, int] = {}
        for i, img in enumerate(self.images):
            seen.setdefault(img.numpy().tobytes(), i)
        idx = sorted(seen.values())
        return self.images[idx], [self.work_of[i] for i in idx], [self.captions[i] for i in idx]


def works_dataset(
    works: list[str], copies: int, concepts: list[str], images_per_concept: int, size: int = 32, seed: int = 0
) -> WorksData:
    """Background shapes (``images_per_concept`` rendered images for each of ``concepts``) plus
    ``copies`` identical copies of each work in ``works`` with its caption."""
    import torch

    from genforget.diffusion.shapes import shapes_dataset

    if copies < 1:
        raise ValueError(f"copies must be >= 1 (got {copies})")
    bg, captions = shapes_dataset(list(concepts), images_per_concept, size, seed)
    imgs, caps, work_of = [bg], list(captions), [None] * len(captions)
    for key in works:
        w = load_work(key, size)
        imgs.append(w.unsqueeze(0).expand(copies, -1, -1, -1))
        caps += [WORKS[key].caption] * copies
        work_of += [key] * copies
    return WorksData(torch.cat(imgs).contiguous(), caps, work_of)
