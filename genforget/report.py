"""Reports: ``report.json`` (the contract other tools read) -> Markdown table and PNG chart.

Reports hold numbers, names of metrics and config values only; never examples or PII.
"""

from __future__ import annotations

import json
from pathlib import Path

# (key, label, lower is better?) of the headline metrics, in table order.
HEADLINE = [
    ("forget_pii_extraction", "forget PII extraction", True),
    ("forget_verbatim_extraction", "forget verbatim extraction", True),
    ("retain_pii_extraction", "retain PII extraction", False),
    ("retain_verbatim_extraction", "retain verbatim extraction", False),
    ("retain_perplexity", "retain perplexity", True),
    ("forget_perplexity", "forget perplexity", False),
    ("mia_min_k_auc", "MIA min-k% AUC (0.5 = unseen)", None),
]


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("—" if v is None else str(v))


def markdown_table(models: dict[str, dict[str, float]]) -> str:
    """Metrics as rows, models as columns; headline metrics first, then the rest sorted."""
    names = list(models)
    keys = [k for k, _, _ in HEADLINE if any(k in m for m in models.values())]
    labels = {k: lab for k, lab, _ in HEADLINE}
    rest = sorted({k for m in models.values() for k in m} - set(keys))
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys + rest:
        lines.append(f"| {labels.get(k, k)} | " + " | ".join(_fmt(models[n].get(k)) for n in names) + " |")
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    t = report.get("timings", {})
    out = [f"# genforget report — method `{report['method']}`", "", markdown_table(report["models"]), ""]
    if t:
        out += ["## Timings (s)", "", "| step | seconds |", "|---|---|"]
        out += [f"| {k} | {v:.1f} |" for k, v in t.items()]
        out.append("")
    if report.get("checks"):
        out += ["## Checks", "", "| check | value | bar | pass |", "|---|---|---|---|"]
        out += [
            f"| {c['name']} | {c['value']:.3f} | {c['bar']} | {'yes' if c['ok'] else 'NO'} |"
            for c in report["checks"]
        ]
        out.append("")
    out += [
        "## Config",
        "",
        "```json",
        json.dumps(report.get("config", {}), indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(out)


def plot_report(report: dict, path: str | Path) -> None:
    """Grouped bars of the rate metrics (0-1) per model, perplexity on its own axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    rates = [(k, lab) for k, lab, _ in HEADLINE if k != "retain_perplexity" and k != "forget_perplexity"]
    rates = [(k, lab) for k, lab in rates if any(k in m for m in models.values())]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [4, 1]})
    width = 0.8 / max(1, len(models))
    colors = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#f39c12"]
    for i, (name, m) in enumerate(models.items()):
        xs = [j + i * width for j in range(len(rates))]
        ax.bar(xs, [m.get(k, 0.0) for k, _ in rates], width, label=name, color=colors[i % len(colors)])
        ax2.bar(i, m.get("retain_perplexity", 0.0), 0.6, color=colors[i % len(colors)])
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(rates))])
    ax.set_xticklabels(
        [lab.replace(" (", "\n(").replace(" extraction", "\nextraction") for _, lab in rates], fontsize=8
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate / AUC")
    ax.axhline(0.5, ls=":", c="gray", lw=0.8)
    ax.legend(ncol=len(models), loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    ax.set_title(f"Forget vs retain — method {report['method']}", pad=28)
    ax2.set_xticks(range(len(models)))
    ax2.set_xticklabels(list(models), fontsize=8)
    ax2.set_title("retain perplexity")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    paths["md"].write_text(render_markdown(report))
    plot_report(report, paths["png"])
    return paths
