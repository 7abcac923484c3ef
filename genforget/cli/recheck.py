"""``genforget recheck --ledger PATH --requests DIR --model NEW_MODEL --data TRAIN [--key_file KEY]``

Exit 0 when no request's identifiers are extractable again, 1 naming those that are, 2 on a
usage error (a request not in the ledger, a broken ledger, a missing key or file).
"""

from __future__ import annotations

import argparse
import sys

from genforget.config import UsageError


def recheck_main(argv: list[str] | None = None) -> int:
    from genforget.requests.recheck import print_rows, recheck

    p = argparse.ArgumentParser(prog="genforget recheck", exit_on_error=False)
    p.add_argument("--ledger", required=True)
    p.add_argument("--requests", required=True, help="dir of the request files the controller keeps")
    p.add_argument("--model", required=True, help="the new checkpoint")
    p.add_argument("--data", required=True, help="TRAIN, to rebuild the probes")
    p.add_argument("--key_file", default="")
    p.add_argument("--text_field", default="text")
    p.add_argument("--threshold", type=float, default=0.1, help="greedy extraction above this flags")
    try:
        a = p.parse_args(sys.argv[1:] if argv is None else argv)
        rows = recheck(a.ledger, a.requests, a.model, a.data, a.key_file, a.threshold, a.text_field)
    except (UsageError, argparse.ArgumentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse on a missing required flag
        return 2 if e.code else 0
    print_rows(rows)
    for what, label in (("extraction", "extractable again"), ("counterfactual flip share", "biased again")):
        flagged = [r["request"] for r in rows if r["flagged"] and r.get("measure", "extraction") == what]
        if flagged:
            print(f"error: {label}: {', '.join(flagged)}", file=sys.stderr)
    if any(r["flagged"] for r in rows):
        return 1
    return 0
