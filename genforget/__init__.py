"""genforget: make Hugging Face models forget chosen training data, and prove it.

Public API::

    import genforget
    model = genforget.unlearn(model, tokenizer, forget, retain, method="npo", max_steps=60)
    metrics = genforget.evaluate(model, tokenizer, forget, retain, holdout)

Names are imported on first use (PEP 562), so ``import genforget`` and ``genforget --help`` do
not pay for torch and transformers until something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genforget._lazy import attach
from genforget._version import __version__

# module -> the public names it defines, imported on first use
_LAZY = {
    "genforget.api": ["UnlearnResult", "load_model", "unlearn"],
    "genforget.config": ["UnlearnConfig"],
    "genforget.evaluation.evaluate": ["evaluate"],
    "genforget.evaluation.split": ["EvalSplit"],
    "genforget.lm.outcome": ["Outcome", "OutcomeWarning"],
    "genforget.methods.registry": ["METHODS", "get_method", "register"],
    "genforget.requests.pipeline": ["forget_requests"],
    "genforget.requests.recheck": ["RecheckCallback"],
    "genforget.scores": ["Scores"],
}

if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from genforget.api import UnlearnResult, load_model, unlearn  # noqa: F401
    from genforget.config import UnlearnConfig  # noqa: F401
    from genforget.evaluation.evaluate import evaluate  # noqa: F401
    from genforget.evaluation.split import EvalSplit  # noqa: F401
    from genforget.lm.outcome import Outcome, OutcomeWarning  # noqa: F401
    from genforget.methods.registry import METHODS, get_method, register  # noqa: F401
    from genforget.requests.pipeline import forget_requests  # noqa: F401
    from genforget.requests.recheck import RecheckCallback  # noqa: F401
    from genforget.scores import Scores  # noqa: F401

__getattr__, __dir__, _names = attach(__name__, _LAZY)
__all__ = _names + ["__version__"]
