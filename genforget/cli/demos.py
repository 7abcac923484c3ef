"""``genforget demo <name>``: the built-in demos (the Makefile's ``demo*`` targets call these)."""

from __future__ import annotations

import sys

from genforget.config import UnlearnConfig, UsageError, parse_config

DEMOS = ("pii", "diffusion", "diffusion-sd", "image-copyright", "request", "copyright", "poison", "bias")


def demo_main(argv: list[str] | None = None) -> int:
    """``genforget demo pii|diffusion|diffusion-sd|image-copyright|request|copyright|poison|bias [--config x.yaml]
    [--field value ...]``: exit 0 when every
    check of the demo passes, 1 when one fails, 2 on a usage error."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in DEMOS:
        got = repr(argv[0]) if argv else "nothing"
        print(f"error: genforget demo needs one of {', '.join(DEMOS)} (got {got})", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    try:
        if name == "request":
            from genforget.demos.request import RequestDemoArgs, run_request_demo
            from genforget.requests.pipeline import RequestUnlearnConfig

            args, ucfg = parse_config((RequestDemoArgs, RequestUnlearnConfig), rest)
            report = run_request_demo(args, ucfg)
        elif name == "copyright":
            from genforget.demos.copyright import CopyrightDemoArgs, run_copyright_demo

            args, ucfg = parse_config((CopyrightDemoArgs, UnlearnConfig), rest)
            report = run_copyright_demo(args, ucfg)
        elif name == "poison":
            from genforget.demos.poison import PoisonDemoArgs, run_poison_demo

            args, ucfg = parse_config((PoisonDemoArgs, UnlearnConfig), rest)
            report = run_poison_demo(args, ucfg)
        elif name == "diffusion-sd":
            from genforget.demos.diffusion_sd import SDDemoArgs, run_sd_demo
            from genforget.diffusion.data import DiffusionConfig

            args, ucfg, dcfg = parse_config((SDDemoArgs, UnlearnConfig, DiffusionConfig), rest)
            if args.erase not in args.concepts:
                raise UsageError(f"erase must be one of concepts {args.concepts} (got {args.erase!r})")
            report = run_sd_demo(args, ucfg, dcfg)
        elif name == "image-copyright":
            from genforget.demos.image_copyright import ImageCopyrightDemoArgs, run_image_copyright_demo
            from genforget.diffusion.data import DiffusionConfig
            from genforget.diffusion.works import WORKS

            args, ucfg, dcfg = parse_config((ImageCopyrightDemoArgs, UnlearnConfig, DiffusionConfig), rest)
            if args.takedown not in WORKS:
                raise UsageError(
                    f"takedown must be one of the built-in works {sorted(WORKS)} (got {args.takedown!r})"
                )
            report = run_image_copyright_demo(args, ucfg, dcfg)
        elif name == "bias":
            from genforget.demos.bias import BiasDemoArgs, run_bias_demo
            from genforget.requests.pipeline import RequestUnlearnConfig

            args, ucfg = parse_config((BiasDemoArgs, RequestUnlearnConfig), rest)
            report = run_bias_demo(args, ucfg)
        elif name == "pii":
            from genforget.demos.pii import DemoArgs, run_demo

            args, ucfg = parse_config((DemoArgs, UnlearnConfig), rest)
            report = run_demo(args, ucfg)
        else:
            from genforget.demos.diffusion import DiffusionDemoArgs, run_diffusion_demo
            from genforget.diffusion.data import DiffusionConfig

            args, ucfg, dcfg = parse_config((DiffusionDemoArgs, UnlearnConfig, DiffusionConfig), rest)
            if not 0 <= args.erase_class <= 9:
                raise UsageError(f"erase_class must be a digit 0..9 (got {args.erase_class})")
            report = run_diffusion_demo(args, ucfg, dcfg)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from genforget.evaluation.report import checks_pass

    return 0 if checks_pass(report["checks"]) else 1
