"""The ``genforget`` command line: one console script, one module per verb.

``genforget <verb> ...`` dispatches through :mod:`genforget.cli.main`; the thin scripts in
``recipes/`` and ``eval/`` call the same ``*_main`` functions, so every entry point is tested
in-process. Usage errors exit with code 2 and write nothing.
"""

from genforget.cli.common import check_output_dir, fingerprint
from genforget.cli.eval import EvalScriptArgs, eval_main
from genforget.cli.unlearn import UnlearnScriptArgs, unlearn_main
from genforget.cli.victim import VictimScriptArgs, train_victim_main

__all__ = [
    "EvalScriptArgs",
    "UnlearnScriptArgs",
    "VictimScriptArgs",
    "check_output_dir",
    "eval_main",
    "fingerprint",
    "train_victim_main",
    "unlearn_main",
]
