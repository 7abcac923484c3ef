"""Registry of unlearning methods, loaded lazily.

Built-in methods are ``"module:attr"`` strings, imported only when named — the way
lm-evaluation-harness's ``lm_eval/api/registry.py`` holds its entries: ``get_method("rmu")``
imports ``genforget.methods.rmu`` and no other method, and importing this module imports nothing
of the package. A method from outside the package registers its class with ``@register("name")``.

A new built-in method is one file in ``genforget/methods/`` plus one line in :data:`BUILTIN`
(see ``docs/adding-a-method.md``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import TypeVar

T = TypeVar("T", bound=type)

# name -> "module:attr" of the Method subclass: one line per built-in method.
BUILTIN: dict[str, str] = {
    "grad_ascent": "genforget.methods.grad_ascent:GradAscent",
    "grad_diff": "genforget.methods.grad_diff:GradDiff",
    "npo": "genforget.methods.npo:NPO",
    "simnpo": "genforget.methods.simnpo:SimNPO",
    "dpo": "genforget.methods.dpo:DPO",
    "idk_nll": "genforget.methods.idk_nll:IdkNLL",
    "idk_dpo": "genforget.methods.idk_dpo:IdkDPO",
    "wga": "genforget.methods.wga:WGA",
    "rmu": "genforget.methods.rmu:RMU",
    "whp": "genforget.methods.whp:WHP",
    "newton": "genforget.methods.newton:Newton",
    "esd": "genforget.methods.esd:ESD",
    "salun": "genforget.methods.salun:SalUn",
    "ablate": "genforget.methods.ablate:Ablate",
}


class _Registry(MutableMapping[str, type]):
    """``name -> Method class``; a string entry is imported on its first lookup."""

    def __init__(self, entries: dict[str, str | type]) -> None:
        self._entries: dict[str, str | type] = dict(entries)

    def __getitem__(self, name: str) -> type:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, attr = entry.split(":")
            entry = getattr(importlib.import_module(module), attr)
            entry.name = name
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, cls: type) -> None:
        if name in self._entries:
            raise ValueError(f"method {name!r} is already registered")
        cls.name = name
        self._entries[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


METHODS = _Registry(BUILTIN)


def register(name: str) -> Callable[[T], T]:
    """Class decorator adding a method class under ``name`` (for methods outside the package)."""

    def wrap(cls: T) -> T:
        METHODS[name] = cls
        return cls

    return wrap


def did_you_mean(name: str, choices: list[str]) -> str:
    """A ' Did you mean X?' suffix for error messages, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def get_method(name: str) -> type:
    """The method class registered as ``name`` (imported now if built in), with a "did you
    mean" on a typo."""
    if name not in METHODS:
        raise ValueError(
            f"unknown method {name!r}.{did_you_mean(name, sorted(METHODS))} "
            f"Registered methods: {', '.join(sorted(METHODS))}."
        )
    return METHODS[name]
