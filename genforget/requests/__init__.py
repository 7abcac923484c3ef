"""Deletion requests end to end: request files → located records → unlearning → verification →
certificate, ledger and recheck. ``genforget forget``, ``genforget ledger verify`` and
``genforget recheck`` are the command lines of these functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genforget._lazy import attach

# `locate` names both a submodule and its main function. Importing the submodule (the pipeline
# does) binds the package's attribute to the module, and a lazy name is only looked up when the
# attribute is missing: so the function is bound here, eagerly, after its module (which is light).
from genforget.requests.locate import iter_records, locate  # noqa: F401

# module -> the public names it defines. Imported on first use (PEP 562, as genforget/__init__.py
# does), so that reading a light submodule (the request options a demo's --help parses) does not
# load the unlearning pipeline and transformers first.
_LAZY = {
    "genforget.requests.ledger": ["append_entry", "read_ledger", "verify_ledger"],
    "genforget.requests.options": ["ForgetArgs", "ForgetResult"],
    "genforget.requests.pipeline": ["forget_requests"],
    "genforget.requests.records": ["LocateResult"],
    "genforget.requests.request": ["Request", "load_request", "load_requests", "parse_request"],
    "genforget.requests.twins": ["make_twins"],
}

if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from genforget.requests.ledger import append_entry, read_ledger, verify_ledger  # noqa: F401
    from genforget.requests.options import ForgetArgs, ForgetResult  # noqa: F401
    from genforget.requests.pipeline import forget_requests  # noqa: F401
    from genforget.requests.records import LocateResult  # noqa: F401
    from genforget.requests.request import Request, load_request, load_requests, parse_request  # noqa: F401
    from genforget.requests.twins import make_twins  # noqa: F401

__getattr__, __dir__, _names = attach(__name__, _LAZY)
__all__ = sorted([*_names, "iter_records", "locate"])
