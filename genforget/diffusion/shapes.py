"""Built-in image–caption data for text-to-image tests and demos: coloured shapes on a dark ground.

Every concept is a caption ``"a photo of a <colour> <shape>"`` and its images are rendered here
with numpy (random centre, size and a little colour jitter and noise), so a tiny Stable
Diffusion pipeline can be trained, erased and judged offline with nothing downloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

# torch is imported where it is used: the demos' options (genforget.demos.options) read this
# module's tables for `genforget demo <name> --help`, which should not wait for torch.
if TYPE_CHECKING:
    import torch

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "blue": (0.15, 0.3, 0.95),
    "green": (0.1, 0.8, 0.2),
    "yellow": (0.95, 0.9, 0.1),
    "magenta": (0.9, 0.15, 0.85),
    "cyan": (0.1, 0.85, 0.9),
    "orange": (1.0, 0.55, 0.05),
    "white": (0.95, 0.95, 0.95),
}
SHAPES = ("square", "circle", "triangle", "cross", "ring", "diamond")

# The demo's concepts (each colour and each shape once, so the retrained oracle never saw either
# word of the erased one) and a second, disjoint set for checks that are not tuned to the first.
CONCEPTS_A = ("a photo of a red square", "a photo of a blue circle", "a photo of a green triangle",
              "a photo of a yellow cross")  # fmt: skip
CONCEPTS_B = ("a photo of a magenta diamond", "a photo of a cyan ring", "a photo of an orange square",
              "a photo of a white triangle")  # fmt: skip


def parse_concept(prompt: str) -> tuple[str, str]:
    """``(colour, shape)`` of a ``"a photo of a(n) <colour> <shape>"`` caption."""
    words = prompt.lower().split()
    if len(words) < 2 or words[-2] not in COLOURS or words[-1] not in SHAPES:
        raise ValueError(
            f"not a shapes caption: {prompt!r} (expected 'a photo of a <colour> <shape>', colour in "
            f"{sorted(COLOURS)}, shape in {list(SHAPES)})"
        )
    return words[-2], words[-1]


def _mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "square":
        return (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r * 0.8)
    if shape == "circle":
        return dy**2 + dx**2 <= r**2
    if shape == "ring":
        d = np.sqrt(dy**2 + dx**2)
        return (d <= r) & (d >= r * 0.55)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    if shape == "cross":
        w = r * 0.33
        return ((np.abs(dy) <= w) & (np.abs(dx) <= r)) | ((np.abs(dx) <= w) & (np.abs(dy) <= r))
    if shape == "triangle":  # apex up; the base is as wide as the triangle is tall
        top, bottom = cy - r, cy + r * 0.8
        half = (dy + r) / (1.8 * r) * r
        return (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half)
    raise ValueError(f"unknown shape {shape!r} (one of {SHAPES})")


def render(prompt: str, n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` images ``[n, 3, size, size]`` in [-1, 1] of the caption ``prompt``."""
    import torch

    colour, shape = parse_concept(prompt)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, 3, size, size), dtype=np.float32)
    base = np.array(COLOURS[colour], dtype=np.float32)
    for i in range(n):
        r = size * rng.uniform(0.22, 0.3)
        cy, cx = rng.uniform(r + 1, size - r - 1, size=2)
        m = _mask(shape, yy, xx, cy, cx, r)
        ground = rng.uniform(0.05, 0.2)
        c = np.clip(base + rng.normal(0, 0.04, 3), 0, 1)
        img = np.where(m[None], c[:, None, None], ground)
        out[i] = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    return torch.from_numpy(out * 2 - 1)


def shapes_dataset(
    prompts: tuple[str, ...] | list[str], per_prompt: int, size: int = 32, seed: int = 0
) -> tuple[torch.Tensor, list[str]]:
    """``(images [N, 3, size, size], captions)``: ``per_prompt`` renders of every prompt."""
    import torch

    images = [render(p, per_prompt, size, seed * 1000 + i) for i, p in enumerate(prompts)]
    return torch.cat(images), [p for p in prompts for _ in range(per_prompt)]
