"""Unlearning methods: one file each, listed in :data:`genforget.methods.registry.BUILTIN` and
imported only when a run names them (importing this package imports no method, nor torch)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # never run
    from genforget.methods.base import Method  # noqa: F401

__all__ = ["Method"]


def __getattr__(name: str) -> Any:
    if name == "Method":
        return importlib.import_module("genforget.methods.base").Method
    try:  # genforget.methods.<file> as an attribute
        return importlib.import_module(f"genforget.methods.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'genforget.methods' has no attribute {name!r}") from None
