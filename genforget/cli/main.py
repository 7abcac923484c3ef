"""``genforget <verb>``: the console script (``[project.scripts]`` in pyproject.toml).

Each verb names a ``module:function`` taking ``argv`` and returning an exit code; modules are
imported only when their verb runs, so ``genforget --help`` is instant. A new verb is one line in
:data:`VERBS`.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

from genforget.methods.registry import did_you_mean

# verb -> (module:function, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "unlearn": ("genforget.cli.unlearn:unlearn_main", "unlearn a forget set from a causal LM"),
    "unlearn-diffusion": (
        "genforget.cli.unlearn_diffusion:unlearn_diffusion_main",
        "erase a class or concept from a diffusion model",
    ),
    "eval": ("genforget.cli.eval:eval_main", "evaluate saved models on a suite (report.json/md/png)"),
    "train-victim": ("genforget.cli.victim:train_victim_main", "train the built-in memorising victim"),
    "demo": (
        "genforget.cli.demos:demo_main",
        "run a built-in demo: pii | diffusion | diffusion-sd | diffusion-copyright | request | copyright | poison | bias",
    ),
    "forget": ("genforget.cli.forget:forget_main", "act on deletion requests: locate, unlearn, certify"),
    "ledger": ("genforget.cli.ledger:ledger_main", "ledger verify PATH: check the deletion ledger's chain"),
    "recheck": ("genforget.cli.recheck:recheck_main", "re-run deleted requests' probes on a new checkpoint"),
}


def usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = [f"  {v:<{width}}  {h}" for v, (_, h) in VERBS.items()]
    return "usage: genforget <verb> [--help] [options]\n\nverbs:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``genforget <verb> ...``; returns the verb's exit code (2 for a usage error)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"error: unknown verb {verb!r}.{did_you_mean(verb, list(VERBS))}\n{usage()}", file=sys.stderr)
        return 2
    module, func = VERBS[verb][0].split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    except Exception as e:  # not a usage error (those return 2): a bug, reported in one line
        return report_internal_error(verb, e)


def report_internal_error(verb: str, exc: BaseException) -> int:
    """Save the full traceback to a temp file and print one line saying where; returns 1.

    Only the exception's type is printed: its message may quote data (a forget-set example),
    which must never reach a terminal or a CI log."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix=f"genforget-{verb}-crash-", suffix=".txt")
    with open(fd, "w") as f:
        f.write("".join(traceback.format_exception(exc)))
    print(
        f"error: internal error in genforget {verb} ({type(exc).__name__}); this is a bug, not your input. "
        f"Full traceback (may quote your data; keep it private) saved to {path}",
        file=sys.stderr,
    )
    return 1


def run() -> NoReturn:
    """The ``genforget`` console script: :func:`main`, ended by :func:`exit_process` (under
    ``accelerate launch``, one of several processes leaves without an abort at exit)."""
    from genforget.cli.launch import exit_process

    exit_process(main())


if __name__ == "__main__":
    run()  # `accelerate launch --module genforget.cli.main` (genforget <verb> --accelerate_config)
