"""The ``genforget`` command line: one console script, one module per verb.

``genforget <verb> ...`` dispatches through :mod:`genforget.cli.main`; the thin scripts in
``recipes/`` and ``eval/`` call the same ``*_main`` functions, so every entry point is tested
in-process. Usage errors exit with code 2 and write nothing.
"""

from __future__ import annotations

from genforget._lazy import attach

# module -> names; imported on first use so that `genforget --help` does not load torch
_LAZY = {
    "genforget.cli.eval": ["EvalScriptArgs", "eval_main"],
    "genforget.cli.unlearn": ["UnlearnScriptArgs", "unlearn_main"],
    "genforget.cli.victim": ["VictimScriptArgs", "train_victim_main"],
    "genforget.data.loaders": ["fingerprint"],
    "genforget.io": ["check_output_dir"],
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
