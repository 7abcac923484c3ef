"""The demos' gating checks, their privacy check and the report section each adds.

A demo's verdict is a list of checks ``{"name", "value", "bar", "ok"}`` (plus ``"gate": False``
for an informational one, shown but never deciding the exit code:
:func:`genforget.evaluation.report.checks_pass`). :func:`bar_checks` builds them from rows whose
bar is the comparison itself (``">= 0.90"``, ``"== 0"``, ``"<= 0.10 (informational)"``), so the
bar a reader sees is the one that was applied.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


def bar_check(name: str, value: float, bar: str, ok: bool | None = None) -> dict:
    """One check: ``value`` against ``bar`` (``"<op> <number>"``, op ``>=``, ``<=`` or ``==``; a
    bar holding ``informational`` does not gate). ``ok``: the verdict when the bar is prose that
    summarises a condition computed elsewhere."""
    if ok is None:
        op, ref = bar.split()[:2]
        ok = _OPS[op](float(value), float(ref))
    check = {"name": name, "value": float(value), "bar": bar, "ok": bool(ok)}
    if "informational" in bar:
        check["gate"] = False
    return check


def bar_checks(rows: Iterable[tuple]) -> list[dict]:
    """:func:`bar_check` of each ``(name, value, bar)`` or ``(name, value, bar, ok)`` row."""
    return [bar_check(*row) for row in rows]


def oracle_gap_rows(audit: dict | None, label: str) -> list[tuple]:
    """The informational row of a relearn audit: the unlearned model's largest gap to the oracle's
    curve (``label, 0-<top> steps``), or none when the audit did not run or had no oracle. Shown,
    not gating: plain NPO hides rather than removes, and the remedies that hold cost retained
    data on these tiny models (docs: "Forgetting that holds")."""
    gap = (audit or {}).get("gap_to_oracle", {}).get("unlearned")
    if gap is None:
        return []
    return [(f"{label}, 0-{audit['budgets'][-1]} steps", gap["max_gap"], "<= 0.10 (informational)")]


def check_budgets(args: Any, key: str) -> list[int]:
    """``args.<key>``, a relearn ladder, as whole numbers (set back: the command line gives list
    fields as strings) that start at 0 and ascend; a :class:`UsageError` naming the field if not."""
    from genforget.config import UsageError

    try:
        b = [int(x) for x in getattr(args, key)]
    except (TypeError, ValueError) as e:
        raise UsageError(f"{key} must be whole numbers, e.g. 0 5 10 20 40 ({e})") from e
    if b and (b != sorted(set(b)) or b[0] != 0):
        raise UsageError(f"{key} must start at 0 and ascend (got {b}; [] = off)")
    setattr(args, key, b)
    return b


def leaked_files(root: Path, values: list[str], allow: set[Path]) -> list[str]:
    """Files under ``root`` (except ``allow``) whose bytes hold any of ``values`` (case-blind):
    the demos' check that no identifier of the forgotten people reached their run dir."""
    needles = [v.lower().encode() for v in values]
    bad = []
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.resolve() not in allow:
            data = f.read_bytes().lower()
            if any(n in data for n in needles):
                bad.append(str(f.relative_to(root)))
    return bad


def as_dicts(**configs: Any) -> dict[str, dict]:
    """Each dataclass as a dict, under its name: a report's ``config`` block."""
    return {k: dataclasses.asdict(v) for k, v in configs.items()}


def diffusion_report(
    method: str, suite: str, config: dict, *, timings: dict, models: dict, details: dict, checks: list
) -> dict:
    """A diffusion demo's report in the shape of the LM demos' (what
    :func:`~genforget.evaluation.report.write_report` reads); diffusion demos run no audits."""
    return {
        "method": method,
        "suite": suite,
        "config": config,
        "timings": timings,
        "models": models,
        "audits": {},
        "details": details,
        "checks": checks,
    }


def show_report(report: dict, table: str | None = None) -> None:
    """Print a demo's table (default: metrics x models) and its checks."""
    from genforget.evaluation.report import markdown_table, print_checks

    print()
    print(table if table is not None else markdown_table(report["models"]))
    print()
    print_checks(report["checks"])


def add_section(md: Path, title: str, body: str) -> None:
    """Put ``## title`` and ``body`` into the report ``md`` right after its heading line."""
    text = md.read_text()
    md.write_text(text.replace("\n\n", f"\n\n## {title}\n\n{body}\n\n", 1))
