"""The benchmark's judge and diffusion metrics (docs/metrics.md, "Diffusion models").

The judge is a logistic-regression digit classifier trained on real digits (a held-out split
measures it); it never sees generated images while fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def _features(images: torch.Tensor) -> np.ndarray:
    # Back from the model's [-1, 1] to the digits' 0..16 pixel scale, as the judge was fit.
    return ((images.clamp(-1, 1) + 1.0) * 8.0).flatten(1).numpy()


@dataclass
class DigitJudge:
    """A held-out digit classifier. ``heldout_accuracy``: its accuracy on real digits it never saw."""

    clf: LogisticRegression
    heldout_accuracy: float

    @classmethod
    def fit(cls, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> DigitJudge:
        x, y = _features(images), labels.numpy()
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
        clf = LogisticRegression(max_iter=5000).fit(xtr / 16.0, ytr)
        return cls(clf, float(clf.score(xte / 16.0, yte)))

    def predict(self, images: torch.Tensor) -> np.ndarray:
        return self.clf.predict(_features(images) / 16.0)

    def logits(self, images: torch.Tensor) -> np.ndarray:
        return self.clf.decision_function(_features(images) / 16.0)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fit to feature sets ``a`` and ``b`` (the FID formula,
    Heusel et al. 2017), here on the judge's 10 logits instead of Inception features."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def class_metrics(
    judge: DigitJudge,
    samples: dict[int, torch.Tensor],
    erased: int,
    real_images: torch.Tensor,
    real_labels: torch.Tensor,
) -> tuple[dict[str, float], dict[int, float]]:
    """Metrics of one model's samples (``samples[c]``: images generated for class ``c``).

    ``erased_class_accuracy``: share of the erased class's samples the judge assigns to it (UA =
    1 − that); ``retained_accuracy``: judge accuracy on the other classes' samples;
    ``retained_judge_fd``: Fréchet distance in judge-logit space between those samples and real
    digits of the same classes (a small-scale FID stand-in); ``retained_confidence``: mean judge
    max-probability on them. Also returns the per-class judge accuracy.
    """
    per_class = {c: float((judge.predict(x) == c).mean()) for c, x in samples.items()}
    kept = [c for c in samples if c != erased]
    kept_x = torch.cat([samples[c] for c in kept])
    kept_y = np.concatenate([np.full(len(samples[c]), c) for c in kept])
    real = real_images[torch.isin(real_labels, torch.tensor(kept))]
    probs = judge.clf.predict_proba(_features(kept_x) / 16.0)
    metrics = {
        "erased_class_accuracy": per_class[erased],
        "unlearning_accuracy": 1.0 - per_class[erased],
        "retained_accuracy": float((judge.predict(kept_x) == kept_y).mean()),
        "retained_judge_fd": frechet_distance(judge.logits(kept_x), judge.logits(real)),
        "retained_confidence": float(probs.max(1).mean()),
    }
    return metrics, per_class
