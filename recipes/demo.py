"""Offline demo: memorise the built-in fictitious-PII corpus, forget 10 % of it, verify.

python recipes/demo.py --config recipes/configs/demo.yaml [--method simnpo] [--use_lora true]
"""

import sys

from genforget.config import UnlearnConfig, UsageError, parse_config
from genforget.demo import DemoArgs, run_demo


def main() -> int:
    try:
        args, ucfg = parse_config((DemoArgs, UnlearnConfig))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_demo(args, ucfg)
    return 0 if all(c["ok"] for c in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
