"""``genforget ledger verify PATH``: exit 0 when the chain is intact, 1 naming the first bad entry."""

from __future__ import annotations

import sys


def ledger_main(argv: list[str] | None = None) -> int:
    from genforget.requests.ledger import verify_ledger

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "verify":
        print("error: usage: genforget ledger verify PATH", file=sys.stderr)
        return 2
    ok, msg = verify_ledger(argv[1])
    print(f"ledger {argv[1]}: {'intact' if ok else 'BROKEN'}: {msg}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
