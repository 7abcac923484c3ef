"""Deletion requests end to end: request files → located records → unlearning → verification →
certificate, ledger and recheck. ``genforget forget``, ``genforget ledger verify`` and
``genforget recheck`` are the command lines of these functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genforget._lazy import lazy_attribute

# public name -> module that defines it. Imported on first use (PEP 562, as genforget/__init__.py
# does), so that reading a light submodule (the request options a demo's --help parses) does not
# load the unlearning pipeline and transformers first.
_LAZY = {
    "ForgetArgs": "genforget.requests.options",
    "ForgetResult": "genforget.requests.options",
    "LocateResult": "genforget.requests.records",
    "Request": "genforget.requests.request",
    "append_entry": "genforget.requests.ledger",
    "forget_requests": "genforget.requests.pipeline",
    "iter_records": "genforget.requests.locate",
    "load_request": "genforget.requests.request",
    "load_requests": "genforget.requests.request",
    "locate": "genforget.requests.locate",
    "make_twins": "genforget.requests.twins",
    "parse_request": "genforget.requests.request",
    "read_ledger": "genforget.requests.ledger",
    "verify_ledger": "genforget.requests.ledger",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from genforget.requests.ledger import append_entry, read_ledger, verify_ledger  # noqa: F401
    from genforget.requests.locate import iter_records, locate  # noqa: F401
    from genforget.requests.options import ForgetArgs, ForgetResult  # noqa: F401
    from genforget.requests.pipeline import forget_requests  # noqa: F401
    from genforget.requests.records import LocateResult  # noqa: F401
    from genforget.requests.request import Request, load_request, load_requests, parse_request  # noqa: F401
    from genforget.requests.twins import make_twins  # noqa: F401


def __getattr__(name: str) -> Any:
    value = lazy_attribute(__name__, _LAZY, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
