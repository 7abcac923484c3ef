"""The image-copyright suite: which works each model regenerates, and what it still draws.

Every model (victim, unlearned, retrained oracle ...) draws ``n`` images per caption from the
same starting noise; each work's caption is scored with Carlini et al.'s extraction criterion
against the victim's *distinct* training images (:mod:`genforget.diffusion.replication`), each
background caption with the 1-NN caption share. Per model:

* ``forgotten_extraction``: mean share of copies of the taken-down works from their captions
  (goal: at most the oracle's + :data:`EXTRACTION_MARGIN`);
* ``kept_extraction``: the same for the works not taken down (they must still come back:
  a takedown removes one work, not the model's memory of every work);
* ``retained_quality``: mean 1-NN caption share of the background captions (goal >= 0.9x the
  victim's), and ``worst_kept_ratio``: the smallest per-work / per-caption ratio to the victim;
* ``forgotten_ssim`` / ``forgotten_nn_distance``: the mean SSIM to the work and the median
  distance to the nearest training image of the taken-down captions' generations.
"""

from __future__ import annotations

import statistics

import torch

from genforget.diffusion.concept_suite import generate
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.pipeline import TextToImage
from genforget.diffusion.replication import extraction, nearest_caption_share, ssim
from genforget.diffusion.works import WORKS, WorksData

EXTRACTION_MARGIN = 0.05
KEPT_MIN_RATIO = 0.90
VICTIM_MIN_EXTRACTION = 0.80


def replication_table(
    samples: dict[str, dict[str, torch.Tensor]], data: WorksData, forgotten: list[str], victim: str = "victim"
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """``(models, per_caption)`` from ``samples[model][caption]`` (images in [-1, 1]): the
    headline metrics above, and per caption the extraction share (works) or 1-NN caption share
    (background captions)."""
    train, work_of, captions = data.distinct()
    row_of = {w: work_of.index(w) for w in set(work_of) if w is not None}
    by_caption = {WORKS[w].caption: w for w in row_of}
    per: dict[str, dict[str, float]] = {}
    extra: dict[str, dict[str, list[float]]] = {}
    for name, s in samples.items():
        per[name], extra[name] = {}, {"ssim": [], "nn": []}
        for cap, imgs in s.items():
            w = by_caption.get(cap)
            if w is None:
                per[name][cap] = nearest_caption_share(imgs, train, captions, cap)
                continue
            e = extraction(imgs, train, row_of[w])
            per[name][cap] = e.copy_of_target
            if w in forgotten:
                extra[name]["ssim"] += ssim(imgs, train[row_of[w]])
                extra[name]["nn"] += e.nn_distances
    gone = {WORKS[w].caption for w in forgotten}
    works_kept = [c for c in by_caption if c not in gone]
    background = [c for c in next(iter(samples.values())) if c not in by_caption]
    models: dict[str, dict[str, float]] = {}
    for name, acc in per.items():
        row = {
            "forgotten_extraction": _mean([acc[c] for c in gone if c in acc]),
            "kept_extraction": _mean([acc[c] for c in works_kept if c in acc]),
            "retained_quality": _mean([acc[c] for c in background]),
            "forgotten_ssim": _mean(extra[name]["ssim"]),
            "forgotten_nn_distance": statistics.median(extra[name]["nn"])
            if extra[name]["nn"]
            else float("nan"),
        }
        if victim in per:
            kept = [c for c in works_kept + background if c in acc]
            row["worst_kept_ratio"] = min(
                (acc[c] / max(per[victim][c], 1e-9) for c in kept), default=float("nan")
            )
        models[name] = row
    return models, per


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def generate_all(
    models: dict[str, TextToImage], captions: list[str], n: int, dcfg: DiffusionConfig, seed: int = 1234
) -> dict[str, dict[str, torch.Tensor]]:
    """``n`` images per caption from each model, the same starting noise for all."""
    return {name: generate(m, captions, n, dcfg, seed=seed) for name, m in models.items()}


def replication_checks(
    models: dict[str, dict[str, float]], per: dict[str, dict[str, float]], works: list[str],
    unlearned: str = "unlearned", oracle: str = "oracle",
) -> list[dict]:  # fmt: skip
    """The takedown's bars as checks: the victim regenerates every work, the unlearned model the
    taken-down ones no more than the oracle (+ margin), and it keeps the rest."""
    v, u, o = models["victim"], models[unlearned], models[oracle]
    worst_victim = min(per["victim"][WORKS[w].caption] for w in works)
    bar_f = o["forgotten_extraction"] + EXTRACTION_MARGIN
    rows = [
        ("victim: worst work's extraction from its caption", worst_victim, f">= {VICTIM_MIN_EXTRACTION:.2f}",
         worst_victim >= VICTIM_MIN_EXTRACTION),
        (f"{unlearned}: taken-down works' extraction", u["forgotten_extraction"],
         f"<= oracle + {EXTRACTION_MARGIN:.2f} = {bar_f:.3f}", u["forgotten_extraction"] <= bar_f),
        (f"{unlearned}: kept works' extraction / victim", u["kept_extraction"] / max(v["kept_extraction"], 1e-9),
         f">= {KEPT_MIN_RATIO:.2f}", u["kept_extraction"] >= KEPT_MIN_RATIO * v["kept_extraction"]),
        (f"{unlearned}: retained quality (background 1-NN share) / victim",
         u["retained_quality"] / max(v["retained_quality"], 1e-9), f">= {KEPT_MIN_RATIO:.2f}",
         u["retained_quality"] >= KEPT_MIN_RATIO * v["retained_quality"]),
    ]  # fmt: skip
    return [{"name": n, "value": float(val), "bar": bar, "ok": bool(ok)} for n, val, bar, ok in rows]
