"""Unlearning methods: one file each, listed in :data:`genforget.methods.registry.BUILTIN` and
imported only when a run names them (importing this package imports no method)."""

from genforget.methods.base import Method

__all__ = ["Method"]
