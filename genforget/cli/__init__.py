"""The ``genforget`` command line: one console script, one module per verb.

``genforget <verb> ...`` dispatches through :mod:`genforget.cli.main`; the thin scripts in
``recipes/`` and ``eval/`` call the same ``*_main`` functions, so every entry point is tested
in-process. Usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genforget.cli' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
