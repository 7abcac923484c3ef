"""Offline diffusion demo: train a digits DDPM (cached), erase one digit, judge before / after.

python recipes/demo_diffusion.py --config recipes/configs/demo_diffusion.yaml [--method esd] [--use_lora true]
"""

import sys

from genforget.config import UnlearnConfig, UsageError, parse_config
from genforget.diffusion.data import DiffusionConfig
from genforget.diffusion.demo import DiffusionDemoArgs, run_diffusion_demo


def main() -> int:
    try:
        args, ucfg, dcfg = parse_config((DiffusionDemoArgs, UnlearnConfig, DiffusionConfig))
        if not 0 <= args.erase_class <= 9:
            raise UsageError(f"erase_class must be a digit 0..9 (got {args.erase_class})")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_diffusion_demo(args, ucfg, dcfg)
    return 0 if all(c["ok"] for c in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
