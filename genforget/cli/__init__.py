"""The ``genforget`` command line: one console script, one module per verb.

``genforget <verb> ...`` dispatches through :mod:`genforget.cli.main`; the thin scripts in
``recipes/`` and ``eval/`` call the same ``*_main`` functions, so every entry point is tested
in-process. Usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

from typing import Any

from genforget._lazy import lazy_attribute

# name -> module; imported on first use so that `genforget --help` does not load torch
_LAZY = {
    "check_output_dir": "genforget.io",
    "fingerprint": "genforget.data.loaders",
    "EvalScriptArgs": "genforget.cli.eval",
    "eval_main": "genforget.cli.eval",
    "UnlearnScriptArgs": "genforget.cli.unlearn",
    "unlearn_main": "genforget.cli.unlearn",
    "VictimScriptArgs": "genforget.cli.victim",
    "train_victim_main": "genforget.cli.victim",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
