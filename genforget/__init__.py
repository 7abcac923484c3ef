"""genforget: make Hugging Face models forget chosen training data, and prove it.

Public API::

    import genforget
    model = genforget.unlearn(model, tokenizer, forget, retain, method="npo", max_steps=60)
    metrics = genforget.evaluate(model, tokenizer, forget, retain, holdout)
"""

import genforget.methods  # noqa: F401  (registers the built-in methods)
from genforget.api import UnlearnResult, load_model, unlearn
from genforget.config import UnlearnConfig
from genforget.evaluation.evaluate import EvalSplit, evaluate
from genforget.lm.outcome import Outcome, OutcomeWarning
from genforget.methods.registry import METHODS, get_method, register
from genforget.scores import Scores

__all__ = [
    "METHODS",
    "EvalSplit",
    "Outcome",
    "OutcomeWarning",
    "Scores",
    "UnlearnConfig",
    "UnlearnResult",
    "evaluate",
    "get_method",
    "load_model",
    "register",
    "unlearn",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Deletion-request API, imported on first use (it pulls in transformers' Trainer callbacks).
    if name in ("RecheckCallback", "forget_requests"):
        import genforget.requests.pipeline as _pipeline
        import genforget.requests.recheck as _recheck

        return {"RecheckCallback": _recheck.RecheckCallback, "forget_requests": _pipeline.forget_requests}[
            name
        ]
    raise AttributeError(f"module 'genforget' has no attribute {name!r}")
