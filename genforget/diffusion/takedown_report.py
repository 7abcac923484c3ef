"""The image takedown's figure and attack table (numbers and images only; no caption text)."""

from __future__ import annotations

from pathlib import Path

import torch

from genforget.diffusion.works import WORKS, WorksData


def attack_markdown(attacks: dict[str, dict]) -> str:
    """One row per model: the best extraction of each attack and the relearning curve."""
    steps = list(next(iter(attacks.values()))["relearn_curve"])
    head = [
        "model",
        "paraphrase (best prompt)",
        "optimised condition",
        *[f"relearn {s} steps" for s in steps],
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, a in attacks.items():
        row = [
            name,
            f"{a['paraphrase']:.2f}",
            f"{a['embedding']:.2f}",
            *[f"{a['relearn_curve'][s]:.2f}" for s in steps],
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def save_takedown_grid(
    samples: dict[str, dict[str, torch.Tensor]], data: WorksData, taken_down: str,
    best_attack: dict[str, torch.Tensor], path: str | Path, k: int = 4,
) -> None:  # fmt: skip
    """Rows: each work (the taken-down one starred). Columns: the training image, then ``k``
    generations of its caption by each model (same starting noise), then for the taken-down row
    the best attack image on each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, work_of, _ = data.distinct()
    works = [w for w in WORKS if w in work_of]
    models = list(samples)
    cols = ["training image", *models, *([f"best attack: {m}" for m in best_attack])]
    fig, axes = plt.subplots(len(works), len(cols), squeeze=False,
                             figsize=(1.2 + 0.55 * (1 + k * len(models) + 2 * len(best_attack)), 0.75 * len(works) + 0.9))  # fmt: skip

    def show(ax, imgs: torch.Tensor) -> None:  # noqa: ANN001
        strip = torch.cat(list(imgs), dim=2)
        ax.imshow(((strip.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
        ax.set_xticks([])
        ax.set_yticks([])

    for r, w in enumerate(works):
        cap = WORKS[w].caption
        show(axes[r, 0], train[work_of.index(w)].unsqueeze(0))
        axes[r, 0].set_ylabel(
            w + (" *" if w == taken_down else ""), rotation=0, ha="right", va="center", fontsize=7
        )
        for c, m in enumerate(models):
            show(axes[r, 1 + c], samples[m][cap][:k])
        for c, m in enumerate(best_attack):
            ax = axes[r, 1 + len(models) + c]
            if w == taken_down:
                show(ax, best_attack[m][:2])
            else:
                ax.axis("off")
    for c, name in enumerate(cols):
        axes[0, c].set_title(name, fontsize=7)
    fig.suptitle(f"takedown of '{taken_down}' (*): generations of each work's caption", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
