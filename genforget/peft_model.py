"""Whether a model is a PEFT one, without importing peft: a leaf module that the adapter code
and the model cards both import."""

from __future__ import annotations

import sys


def is_peft_model(model: object) -> bool:
    """Whether ``model`` is a ``PeftModel``, without importing peft (none exists before it is)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)
