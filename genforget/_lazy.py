"""PEP 562 lazy attributes shared by the package's ``__init__`` modules, so that importing
``genforget`` or ``genforget.cli`` does not load torch before a name that needs it is used."""

from __future__ import annotations

import importlib
from typing import Any


def lazy_attribute(package: str, table: dict[str, str], name: str) -> Any:
    """``name`` from the module ``table`` maps it to, imported now; AttributeError otherwise."""
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
