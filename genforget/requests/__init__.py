"""Deletion requests end to end: request files → located records → unlearning → verification →
certificate, ledger and recheck. ``genforget forget``, ``genforget ledger verify`` and
``genforget recheck`` are the command lines of these functions."""

from genforget.requests.ledger import append_entry, read_ledger, verify_ledger
from genforget.requests.locate import LocateResult, iter_records, locate
from genforget.requests.pipeline import ForgetArgs, ForgetResult, forget_requests
from genforget.requests.request import Request, load_request, load_requests, parse_request
from genforget.requests.twins import make_twins

__all__ = [
    "ForgetArgs",
    "ForgetResult",
    "LocateResult",
    "Request",
    "append_entry",
    "forget_requests",
    "iter_records",
    "load_request",
    "load_requests",
    "locate",
    "make_twins",
    "parse_request",
    "read_ledger",
    "verify_ledger",
]
