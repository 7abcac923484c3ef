"""Tee a benchmark's output into a Markdown file headed by the commit it was measured at.

``python bench/robust.py | python bench/stamp.py runs/bench/robust.md`` (what ``make bench``
does for every benchmark): the table printed to the terminal is also kept, with the commit
(``+dirty`` when the tree had uncommitted changes), the date, torch and the CPU/GPU it ran on,
so a number in the docs can be traced to the code that produced it.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from pathlib import Path


def provenance() -> str:
    """One line: commit, date, machine."""

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    sha = git("rev-parse", "--short=12", "HEAD") or "unknown commit"
    if git("status", "--porcelain", "--untracked-files=no"):
        sha += "+dirty"
    try:
        import torch

        device = (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU x{torch.get_num_threads()}"
        )
        tv = torch.__version__
    except ImportError:
        device, tv = "CPU", "none"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"measured at commit `{sha}`, {when}, on {platform.processor() or platform.machine()} ({device}), torch {tv}"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python bench/X.py | python bench/stamp.py OUT.md", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"_{provenance()}_\n\n"]
    for line in sys.stdin:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    out.write_text("".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
