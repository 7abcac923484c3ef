"""Judges of text-to-image concepts, fitted on images (there is no offline CLIP to score prompts).

A judge is a classifier over the concepts' prompts, fitted on labelled images — by default the
victim's own generations of each prompt (labelled by the prompt that made them), which needs no
data beyond the pipeline; a held-out quarter measures it. The measure it gives a model is, per
prompt, the share of that prompt's generations the judge assigns to the prompt's concept
(:func:`concept_accuracy`): the erased concept's share should fall, the kept ones' stay.

Two kinds, so a result is not an artefact of one: ``cnn`` (a small convolutional net: colour and
shape anywhere in the image) and ``linear`` (logistic regression on 8x8-pooled pixels and colour
histograms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

JUDGE_KINDS = ("cnn", "linear")


def _cnn(n_classes: int, in_channels: int = 3) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, n_classes),
    )  # fmt: skip


def _linear_features(images: torch.Tensor) -> np.ndarray:
    x = (images.clamp(-1, 1) + 1) / 2
    pooled = F.adaptive_avg_pool2d(x, 8).flatten(1)
    hist = [torch.stack([torch.histc(img[c], bins=8, min=0, max=1) for c in range(3)]).flatten() for img in x]
    hist = torch.stack(hist) / (x.shape[-1] * x.shape[-2])
    return torch.cat([pooled, hist], 1).numpy()


@dataclass
class ConceptJudge:
    """A fitted concept classifier. ``classes``: the prompts, in label order;
    ``heldout_accuracy``: its accuracy on the held-out share of the images it was given."""

    kind: str
    classes: list[str]
    model: Any
    heldout_accuracy: float

    @classmethod
    def fit(
        cls, images: torch.Tensor, labels: torch.Tensor, classes: list[str], kind: str = "cnn",
        seed: int = 0, steps: int = 400,
    ) -> ConceptJudge:  # fmt: skip
        """Fit on ``images`` ``[N, 3, H, W]`` in [-1, 1] with ``labels`` (indices into ``classes``);
        a stratified quarter is held out to measure it. A ``cnn`` judge also takes latents
        ``[N, C, h, w]`` (a judge of the UNet's output before the VAE)."""
        from sklearn.model_selection import train_test_split

        if kind not in JUDGE_KINDS:
            raise ValueError(f"judge kind must be one of {JUDGE_KINDS} (got {kind!r})")
        idx = np.arange(len(images))
        tr, te = train_test_split(idx, test_size=0.25, random_state=seed, stratify=labels.numpy())
        tr, te = torch.from_numpy(tr), torch.from_numpy(te)
        if kind == "linear":
            from sklearn.linear_model import LogisticRegression

            feats = _linear_features(images)
            clf = LogisticRegression(max_iter=3000, C=1.0).fit(feats[tr], labels[tr].numpy())
            acc = float(clf.score(feats[te], labels[te].numpy()))
            return cls(kind, list(classes), clf, acc)
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        net = _cnn(len(classes), images.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        x, y = images[tr], labels[tr]
        for _ in range(steps):
            b = torch.randint(0, len(x), (min(64, len(x)),), generator=g)
            xb = x[b]
            flip = torch.rand(len(b), generator=g) < 0.5  # shapes here are mirror-symmetric
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = F.cross_entropy(net(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        judge = cls(kind, list(classes), net, 0.0)
        judge.heldout_accuracy = float((judge.predict(images[te]) == labels[te].numpy()).mean())
        return judge

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> np.ndarray:
        """Class index per image."""
        if self.kind == "linear":
            return self.model.predict(_linear_features(images))
        return torch.cat(
            [self.model(images[i : i + 256]).argmax(1) for i in range(0, len(images), 256)]
        ).numpy()


def fit_judge_on_samples(samples: dict[str, torch.Tensor], kind: str = "cnn", seed: int = 0) -> ConceptJudge:
    """A judge fitted on generations (``samples[prompt]``: images made from that prompt)."""
    classes = list(samples)
    images = torch.cat([samples[p] for p in classes])
    labels = torch.cat([torch.full((len(samples[p]),), i) for i, p in enumerate(classes)])
    return ConceptJudge.fit(images, labels, classes, kind, seed)


def concept_accuracy(judge: ConceptJudge, samples: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per prompt: the share of its images the judge assigns to it."""
    return {p: float((judge.predict(x) == judge.classes.index(p)).mean()) for p, x in samples.items()}
