"""Does a model regenerate its training images? Extraction under Carlini et al.'s criterion.

A generation ``x̂`` is an **extracted copy** of training image ``x`` (Carlini et al. 2023,
*Extracting Training Data from Diffusion Models*, arXiv:2301.13188, Sec. 5.1) when ``x`` is its
nearest training image and it is close to ``x`` *relative to its other neighbours*::

    ratio(x̂) = d(x̂, x) / (alpha * mean_{y in S} d(x̂, y)) < threshold

``d``: the root-mean-square pixel difference of images in [-1, 1] (an l2 distance divided by
sqrt(pixels), so 0.0 is identical and the scale does not depend on the resolution); ``S``: the
``n`` training images nearest to ``x̂`` (``x`` among them), over **distinct** images, since a
work's duplicates would otherwise be its own "other" neighbours and hide the copy; ``alpha =
0.5``, ``n = 50`` (the paper's values) and ``threshold = 1``: a copy is at least twice as close to
its nearest training image as to its typical near neighbour. The ratio, not a raw distance, is
the paper's point: a plain-background image is close to *many* training images in l2 without
copying any, while a copy is close to one.

Beside it: SSIM to the work (Wang et al. 2004; scikit-image's ``structural_similarity``, the
``image`` extra), a second similarity that is not l2, and for the captions a model should keep
drawing, the share of their generations whose nearest training image carries their caption
(a 1-nearest-neighbour judge on the real training images: higher = still draws its caption).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ALPHA = 0.5
N_NEIGHBOURS = 50
THRESHOLD = 1.0


def rms_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[A, B]``: the root-mean-square difference of every image of ``a`` to every one of ``b``
    (``[*, C, H, W]`` on the same scale)."""
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    return (torch.cdist(fa, fb) / fa.shape[1] ** 0.5).float()


def carlini_ratio(
    dist: torch.Tensor, n: int = N_NEIGHBOURS, alpha: float = ALPHA
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ratio [G], nearest [G])`` from distances ``[G, T]`` of generations to distinct training
    images: ``d_nearest / (alpha * mean of the n smallest distances)`` (the nearest included, as
    in the paper's ``S``) and the index of the nearest training image. With one training image
    the ratio is ``1 / alpha``: nothing can be a copy relative to neighbours it does not have."""
    k = min(n, dist.shape[1])
    near, idx = dist.topk(k, dim=1, largest=False)
    mean = near.mean(1).clamp_min(1e-12)
    return near[:, 0] / (alpha * mean), idx[:, 0]


@dataclass
class Extraction:
    """One prompt's generations against the training set: ``copy_of_target`` (share that are
    extracted copies of the target work), ``copy_of_any`` (copies of any training image),
    ``ratios`` and ``nn_distances`` per generation, ``nearest`` (index per generation)."""

    copy_of_target: float
    copy_of_any: float
    ratios: list[float]
    nn_distances: list[float]
    nearest: list[int]


def extraction(
    generations: torch.Tensor,
    train_images: torch.Tensor,
    target: int | None,
    n: int = N_NEIGHBOURS,
    alpha: float = ALPHA,
    threshold: float = THRESHOLD,
) -> Extraction:
    """Carlini et al.'s criterion for ``generations`` against distinct ``train_images``;
    ``target``: the row of the work the prompt names (``None``: no target, ``copy_of_target``
    is 0)."""
    d = rms_distances(generations, train_images)
    ratio, nearest = carlini_ratio(d, n, alpha)
    copy = ratio < threshold
    on_target = copy & (nearest == target) if target is not None else torch.zeros_like(copy)
    return Extraction(
        copy_of_target=float(on_target.float().mean()),
        copy_of_any=float(copy.float().mean()),
        ratios=[round(float(r), 4) for r in ratio],
        nn_distances=[round(float(v), 4) for v in d.min(1).values],
        nearest=[int(i) for i in nearest],
    )


def nearest_caption_share(generations: torch.Tensor, train_images: torch.Tensor, train_captions: list[str],
                          caption: str) -> float:  # fmt: skip
    """Share of ``generations`` whose nearest (RMS) training image has ``caption``: a 1-NN judge
    on the real training images of whether a caption still draws what it was trained on."""
    nearest = rms_distances(generations, train_images).argmin(1)
    return float(sum(train_captions[int(i)] == caption for i in nearest) / len(generations))


def ssim(generations: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """SSIM of each generation (``[G, 3, H, W]`` in [-1, 1]) to ``reference`` (``[3, H, W]``),
    scikit-image's ``structural_similarity`` over the colour channels with ``data_range`` 2 (the
    [-1, 1] scale) and its default 7x7 window."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError as e:
        raise ImportError("SSIM needs scikit-image: pip install 'genforget[image]'") from e
    ref = reference.permute(1, 2, 0).double().numpy()
    return [
        float(structural_similarity(g.permute(1, 2, 0).double().numpy(), ref, channel_axis=2, data_range=2.0))
        for g in generations
    ]
