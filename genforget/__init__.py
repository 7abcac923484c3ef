"""genforget: make Hugging Face models forget chosen training data, and prove it.

Public API::

    import genforget
    model = genforget.unlearn(model, tokenizer, forget, retain, method="npo", max_steps=60)
    metrics = genforget.evaluate(model, tokenizer, forget, retain, holdout)

Names are imported on first use (PEP 562), so ``import genforget`` and ``genforget --help`` do
not pay for torch and transformers until something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genforget._lazy import lazy_attribute
from genforget._version import __version__

# public name -> module that defines it
_LAZY = {
    "unlearn": "genforget.api",
    "load_model": "genforget.api",
    "UnlearnResult": "genforget.api",
    "UnlearnConfig": "genforget.config",
    "evaluate": "genforget.evaluation.evaluate",
    "EvalSplit": "genforget.evaluation.split",
    "Outcome": "genforget.lm.outcome",
    "OutcomeWarning": "genforget.lm.outcome",
    "METHODS": "genforget.methods.registry",
    "get_method": "genforget.methods.registry",
    "register": "genforget.methods.registry",
    "Scores": "genforget.scores",
    "forget_requests": "genforget.requests.pipeline",
    "RecheckCallback": "genforget.requests.recheck",
}

__all__ = sorted(_LAZY) + ["__version__"]

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


def __getattr__(name: str) -> Any:
    value = lazy_attribute(__name__, _LAZY, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
