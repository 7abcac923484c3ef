"""Reports: ``report.json`` (the contract other tools read) -> Markdown table and PNG chart.

Reports hold numbers, names of metrics and config values only; never examples or PII.
"""

from __future__ import annotations

import json
from pathlib import Path

# (key, label, lower is better?) of the headline metrics, in table order.
HEADLINE = [
    ("forget_pii_extraction", "forget PII extraction", True),
    ("attack_success_rate", "backdoor attack success rate", True),
    ("false_trigger_rate", "backdoor false-trigger rate", True),
    ("counterfactual_flip_share", "counterfactual flip share", True),
    ("counterfactual_gap", "counterfactual P(positive) gap", True),
    ("demographic_parity_gap", "demographic parity gap (matched)", True),
    ("task_accuracy", "task accuracy (fair rule)", False),
    ("stereotype_preference", "stereotype preference (0.5 = none)", None),
    ("forget_verbmem", "forget VerbMem (MUSE)", True),
    ("forget_knowmem", "forget KnowMem (MUSE)", True),
    ("retain_verbmem", "retain VerbMem (MUSE)", False),
    ("retain_knowmem", "retain KnowMem (MUSE)", False),
    ("forget_verbatim_extraction", "forget verbatim extraction", True),
    ("retain_pii_extraction", "retain PII extraction", False),
    ("retain_verbatim_extraction", "retain verbatim extraction", False),
    ("retain_perplexity", "retain perplexity", True),
    ("forget_perplexity", "forget perplexity", False),
    ("mia_min_k_auc", "MIA min-k% AUC (0.5 = unseen)", None),
    ("privleak", "PrivLeak (0 = like retrain)", None),
    ("forget_quality", "forget quality (KS p, >= 0.05 = like retrain)", False),
    ("model_utility", "model utility", False),
    ("forget_truth_ratio", "forget truth ratio", None),
    ("forget_rouge_l_recall", "forget ROUGE-L recall", True),
    ("degeneration_rate", "degenerate generations", True),
    ("erased_class_accuracy", "erased class: judged as it", True),
    ("unlearning_accuracy", "unlearning accuracy UA (1 - above)", False),
    ("retained_accuracy", "retained classes: judge accuracy", False),
    ("retained_judge_fd", "retained: Frechet dist. (judge logits)", True),
    ("retained_confidence", "retained: judge confidence", False),
    ("erased_concept_accuracy", "erased concept: judged as it", True),
    ("kept_concept_accuracy", "kept concepts: judged as themselves", False),
    ("worst_kept_ratio", "worst kept concept / victim", False),
]


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("—" if v is None else str(v))


def markdown_table(models: dict[str, dict[str, float]]) -> str:
    """Metrics as rows, models as columns; headline metrics first, then the rest sorted
    (lm-evaluation-harness metrics go to their own table: :func:`lm_eval_table`)."""
    models = {n: {k: v for k, v in m.items() if not k.startswith("lm_eval/")} for n, m in models.items()}
    names = list(models)
    keys = [k for k, _, _ in HEADLINE if any(k in m for m in models.values())]
    labels = {k: lab for k, lab, _ in HEADLINE}
    rest = sorted({k for m in models.values() for k in m} - set(keys))
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys + rest:
        lines.append(f"| {labels.get(k, k)} | " + " | ".join(_fmt(models[n].get(k)) for n in names) + " |")
    return "\n".join(lines)


def lm_eval_table(models: dict[str, dict[str, float]], lm_details: dict | None = None) -> str:
    """lm-evaluation-harness metrics (``lm_eval/<task>/<metric>``) as rows, models as columns,
    each value with its standard error where lm-eval gave one; empty when there are none."""
    keys = sorted({k for m in models.values() for k in m if k.startswith("lm_eval/")})
    if not keys:
        return ""
    names = list(models)

    def cell(n: str, k: str) -> str:
        v = models[n].get(k)
        se = ((lm_details or {}).get(n) or {}).get("stderr", {}).get(k)
        return _fmt(v) + (f" ± {se:.3f}" if isinstance(v, float) and isinstance(se, float) else "")

    lines = ["| task / metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        lines.append(f"| {k.removeprefix('lm_eval/')} | " + " | ".join(cell(n, k) for n in names) + " |")
    return "\n".join(lines)


def audits_table(audits: dict[str, dict[str, dict]]) -> str:
    """One row per (model, audit): re-measured forget metrics and the recovered share."""
    keys = sorted({k for a in audits.values() for r in a.values() for k in r if k != "seconds"})
    lines = ["| model | audit | " + " | ".join(keys) + " | seconds |", "|---|---|" + "---|" * (len(keys) + 1)]
    for model, per in audits.items():
        for audit, r in per.items():
            lines.append(
                f"| {model} | {audit} | "
                + " | ".join(_fmt(r.get(k)) for k in keys)
                + f" | {r['seconds']:.1f} |"
            )
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    t = report.get("timings", {})
    title = f"# genforget report — method `{report['method']}`"
    if report.get("suite"):
        title += f", suite `{report['suite']}`"
    out = [title, "", markdown_table(report["models"]), ""]
    lm_table = lm_eval_table(report["models"], report.get("details", {}).get("lm_eval"))
    if lm_table:
        out += [
            "## Standard tasks (lm-evaluation-harness)",
            "",
            "Retained capability on lm-eval tasks, run on each model in memory (± standard error).",
            "",
            lm_table,
            "",
        ]
    if report.get("audits"):
        out += [
            "## Robustness audits",
            "",
            "Forgetting re-measured after each attack on a copy; recovered share: "
            "0 = still forgotten, 1 = back to the victim's level.",
            "",
            audits_table(report["audits"]),
            "",
        ]
    if report.get("relearn_speed"):
        sp = report["relearn_speed"]
        out += [
            "## Relearn speed",
            "",
            f"`{sp['metric']}` after fine-tuning a copy on the forget set for each step budget "
            f"(lr {sp['learning_rate']:g}, batch {sp['batch_size']}). The oracle never saw the forget "
            "set: its curve is what removed looks like; area = mean gap over the ladder.",
            "",
            relearn_speed_table(sp),
            "",
        ]
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


COLORS = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#f39c12", "#16a085", "#7f8c8d"]


def plot_report(report: dict, path: str | Path) -> None:
    """One small bar chart per headline metric, a bar per model (victim / unlearned / oracle ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    keys = [(k, lab) for k, lab, _ in HEADLINE if any(k in m for m in models.values())]
    cols = max(1, min(4, len(keys)))  # a report without a headline metric still gets its (empty) chart
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, (k, lab) in zip(axes.flat, keys, strict=False):
        vals = [models[n].get(k) for n in models]
        ax.bar(range(len(models)), [v if v is not None else 0.0 for v in vals], color=COLORS[: len(models)])
        ax.set_title(lab, fontsize=8)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(list(models), fontsize=7, rotation=20)
        if k.startswith("mia_"):
            ax.axhline(0.5, ls=":", c="gray", lw=0.8)
        if k == "forget_quality":
            ax.axhline(0.05, ls=":", c="gray", lw=0.8)
        if k == "stereotype_preference":
            ax.axhline(0.5, ls=":", c="gray", lw=0.8)
        for i, v in enumerate(vals):
            if v is not None:
                ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=6)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(
        f"genforget — method {report['method']}"
        + (f", suite {report['suite']}" if report.get("suite") else "")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tradeoff(report: dict, path: str | Path) -> bool:
    """Forget-vs-utility scatter (one point per model); False when fewer than two models have both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fx = next(
        (
            k
            for k in ("forget_pii_extraction", "forget_rouge_l_recall")
            if any(k in m for m in report["models"].values())
        ),
        None,
    )
    pts = {
        n: (m[fx], m["model_utility"])
        for n, m in report["models"].items()
        if fx and fx in m and "model_utility" in m
    }
    if len(pts) < 2:
        return False
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, (n, (x, y)) in enumerate(pts.items()):
        ax.scatter([x], [y], color=COLORS[i % len(COLORS)], s=40)
        ax.annotate(n, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"{fx} (lower = more forgotten)")
    ax.set_ylabel("model utility (higher = better kept)")
    ax.set_title("Forget vs utility")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_relearn_speed(report: dict, path: str | Path) -> bool:
    """Forget extraction vs relearning steps, one line per model (the oracle's: what "removed"
    looks like); False when the report has no relearn-speed audit."""
    speed = report.get("relearn_speed")
    if not speed:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, (name, curve) in enumerate(speed["curves"].items()):
        style = {"ls": "--", "c": "black"} if name == "oracle" else {"c": COLORS[i % len(COLORS)]}
        ax.plot(speed["budgets"], curve, marker="o", label=name, **style)
    ax.set_xlabel(
        f"relearning steps on the forget set (lr {speed['learning_rate']:g}, batch {speed['batch_size']})"
    )
    ax.set_ylabel(speed["metric"].replace("_", " "), fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("Relearn speed: above the oracle's curve = hidden, not removed", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def relearn_speed_table(speed: dict) -> str:
    """Curves as rows (models), budgets as columns, then the gap to the oracle."""
    b = speed["budgets"]
    lines = [
        "| model | " + " | ".join(f"{k} steps" for k in b) + " | area vs oracle | largest gap (at step) |",
        "|---|" + "---|" * (len(b) + 2),
    ]
    for name, curve in speed["curves"].items():
        gap = speed["gap_to_oracle"].get(name)
        tail = f"{gap['area']:.3f} | {gap['max_gap']:.3f} ({gap['max_gap_at']:.0f})" if gap else "— | —"
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in curve) + f" | {tail} |")
    return "\n".join(lines)


def checks_pass(checks: list[dict]) -> bool:
    """Whether every gating check passed (``gate: False`` checks are shown, never decisive)."""
    return all(c["ok"] for c in checks if c.get("gate", True))


def print_checks(checks: list[dict]) -> None:
    """One line per demo check: ok, FAIL, or "not yet" for a failing informational one."""
    for c in checks:
        mark = "ok" if c["ok"] else ("FAIL" if c.get("gate", True) else "not yet")
        print(f"  [{mark}] {c['name']}: {c['value']:.3f} (bar {c['bar']})")


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.png`` (and ``tradeoff.png`` when two or
    more models have forget and utility numbers) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    paths["md"].write_text(render_markdown(report))
    plot_report(report, paths["png"])
    if plot_tradeoff(report, out_dir / "tradeoff.png"):
        paths["tradeoff"] = out_dir / "tradeoff.png"
    if plot_relearn_speed(report, out_dir / "relearn_speed.png"):
        paths["relearn_speed"] = out_dir / "relearn_speed.png"
    return paths
