"""Registry of unlearning methods: a new method is one file plus one ``@register`` line."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

METHODS: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator adding an unlearning method to :data:`METHODS` under ``name``."""

    def wrap(cls: T) -> T:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name].__name__}")
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def did_you_mean(name: str, choices: list[str]) -> str:
    """A ' Did you mean X?' suffix for error messages, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def get_method(name: str) -> type:
    """Look up a registered method class by name, with a "did you mean" on a typo."""
    import genforget.methods  # noqa: F401  (fills METHODS on first use)

    if name not in METHODS:
        raise ValueError(
            f"unknown method {name!r}.{did_you_mean(name, sorted(METHODS))} "
            f"Registered methods: {', '.join(sorted(METHODS))}."
        )
    return METHODS[name]
