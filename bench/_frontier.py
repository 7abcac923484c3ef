"""The Pareto view of ``bench/robust.py`` (issue 22): retained knowledge kept (higher is better)
against the largest relearn gap to the retrain (lower) and the cost in retrains (lower).

    python bench/_frontier.py runs/bench/robust/robust.json runs/bench/robust22/robust.json \
        --out docs/robust-frontier.png

folds the rows of several ``bench/robust.py --only ...`` runs (same victim and oracle; a model
named twice keeps its first row) into one table and plot: attempts measured one at a time.

A row that did not forget (forget PII extraction above ``FORGOT``) is no candidate: keeping
everything by removing nothing is not a trade-off. The retrain itself is a point (kept 1.0,
gap 0 by definition, cost 1.0): the reference that holds by construction.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FORGOT = 0.10
BARS = {"kept": 0.90, "gap": 0.10, "cost": 0.35}


def _point(r: dict) -> tuple[float, float, float]:
    return r["retain_pii_kept"], r["relearn_max_gap"], r["time_vs_retrain"]


def candidates(rows: list[dict]) -> list[dict]:
    """Rows that forgot and have a relearn gap (the retrain's set to 0)."""
    out = []
    for r in rows:
        if r["model"] == "oracle":
            out.append({**r, "relearn_max_gap": 0.0})
        elif r["forget_pii_extraction"] <= FORGOT and r.get("relearn_max_gap") is not None:
            out.append(r)
    return out


def dominates(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """``a`` is at least as good as ``b`` in every axis (kept up, gap and cost down) and better in one."""
    ge = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2]
    return ge and a != b


def pareto(rows: list[dict]) -> list[dict]:
    """Each candidate with ``on_frontier`` (no other candidate dominates it) and ``meets_bars``
    (kept >= 0.90x, gap <= 0.10, cost <= 0.35 retrains: the issue's goal)."""
    cands = candidates(rows)
    out = []
    for r in cands:
        p = _point(r)
        out.append(
            {
                **r,
                "on_frontier": not any(dominates(_point(o), p) for o in cands),
                "meets_bars": p[0] >= BARS["kept"] and p[1] <= BARS["gap"] and p[2] <= BARS["cost"],
            }
        )
    return out


def plot(points: list[dict], path: Path, title: str) -> Path:
    """Kept (x) against gap (y); marker area grows with cost; frontier points filled; the goal's
    corner shaded. Points are numbered and named in a key beside the axes: a dozen rows crowd
    into two clusters (the UNDO rows near gap 0), where names written at the points overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    fig.subplots_adjust(right=0.58)
    ax.add_patch(plt.Rectangle((BARS["kept"], -1.0), 1.0, 1.0 + BARS["gap"], alpha=0.08, color="green"))
    ax.axhline(BARS["gap"], color="green", lw=0.8, ls="--")
    ax.axvline(BARS["kept"], color="green", lw=0.8, ls="--")
    key = []
    for i, r in enumerate(sorted(points, key=lambda r: -r["retain_pii_kept"]), start=1):
        kept, gap, cost = _point(r)
        face = "C0" if r["on_frontier"] else "none"
        ax.scatter(kept, gap, s=40 + 400 * min(cost, 1.0), facecolors=face, edgecolors="C0")
        ax.annotate(str(i), (kept, gap), fontsize=8, xytext=(5, 5), textcoords="offset points")
        key.append(f"{i}. {r['model']} ({cost:.2f}x)")
    fig.text(0.6, 0.5, "\n".join(key), fontsize=8, va="center", family="monospace")
    ax.set_xlim(min(_point(r)[0] for r in points) - 0.05, 1.05)
    ax.set_ylim(-0.03, max(_point(r)[1] for r in points) + 0.05)
    ax.set_xlabel("retain PII kept (x victim)")
    ax.set_ylabel("largest relearn gap to the retrain")
    ax.set_title(
        title + "\nfilled: Pareto frontier; area: cost in retrains; green: goal (kept >= 0.9, gap <= 0.1)",
        fontsize=9,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def print_pareto(points: list[dict]) -> None:
    """The Pareto table, most retained knowledge first."""
    print(
        "| model | retain PII kept | largest relearn gap | cost (x retrain) | on frontier | meets all three bars |"
    )
    print("|---|---|---|---|---|---|")
    for r in sorted(points, key=lambda r: -r["retain_pii_kept"]):
        print(
            f"| {r['model']} | {r['retain_pii_kept']:.2f}x | {r['relearn_max_gap']:.2f} | "
            f"{r['time_vs_retrain']:.2f} | {'yes' if r['on_frontier'] else ''} | {'yes' if r['meets_bars'] else 'no'} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description="Fold bench/robust.py runs into one Pareto table and plot")
    ap.add_argument("runs", nargs="+", help="robust.json files of bench/robust.py runs")
    ap.add_argument("--out", default="runs/bench/robust_frontier.png")
    ap.add_argument("--title", default="Forgetting that holds: 459k-parameter victim")
    args = ap.parse_args()
    rows: dict[str, dict] = {}
    for path in args.runs:
        for r in json.loads(Path(path).read_text())["rows"]:
            rows.setdefault(r["model"], r)
    points = pareto(list(rows.values()))
    print_pareto(points)
    print(f"\n{plot(points, Path(args.out), args.title)}")


if __name__ == "__main__":
    main()
