"""Unlearning methods. Importing this package registers every method in :data:`METHODS`."""

from genforget.methods import (  # noqa: F401
    dpo,
    esd,
    grad_ascent,
    grad_diff,
    idk_dpo,
    idk_nll,
    newton,
    npo,
    rmu,
    salun,
    simnpo,
    wga,
    whp,
)
from genforget.methods.base import Method

__all__ = ["Method"]
