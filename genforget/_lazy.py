"""PEP 562 lazy attributes shared by the package's ``__init__`` modules, so that importing
``genforget``, ``genforget.cli`` or a light submodule (the demos' options, the diffusion tables)
does not load torch, transformers or diffusers before a name that needs them is used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def attach(
    package: str, names: dict[str, list[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the package ``package``, whose public names are
    ``names`` (module -> the names it defines): a name's module is imported on first use and the
    value kept in the package, so later lookups skip ``__getattr__`` (the shape of
    scientific-python's ``lazy_loader.attach``)."""
    where = {name: module for module, listed in names.items() for name in listed}
    for name, module in where.items():
        if module == f"{package}.{name}":
            # once anything imports that submodule, the package's attribute is the module and
            # __getattr__ is never asked: the name would silently become a module
            raise ValueError(f"{package}.{name} is a submodule too: import {name!r} eagerly instead")

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
