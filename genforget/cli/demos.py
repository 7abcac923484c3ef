"""``genforget demo <name>``: the built-in demos (the Makefile's ``demo*`` targets call these).

Each demo is one entry of :data:`DEMOS`: the dataclasses its options fill (``"module:Class"``, in
the order :func:`~genforget.config.parse_config` reads them; a demo's own are in
:mod:`genforget.demos.options`), the ``"module:function"`` that runs it with one instance of each,
and an optional check of its own options. Modules are imported only when their demo runs, so
``genforget demo --help`` is instant and ``genforget demo <name> --help`` of a language-model demo
needs no torch. A new demo is one entry.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genforget.cli.args import parse_config
from genforget.config import UsageError

UNLEARN = "genforget.config:UnlearnConfig"
REQUEST_UNLEARN = "genforget.requests.options:RequestUnlearnConfig"
DIFFUSION = "genforget.diffusion.data:DiffusionConfig"


def _check_digit(args: Any) -> None:
    if not 0 <= args.erase_class <= 9:
        raise UsageError(f"erase_class must be a digit 0..9 (got {args.erase_class})")


def _check_work(args: Any) -> None:
    from genforget.diffusion.works import WORKS

    if args.takedown not in WORKS:
        raise UsageError(
            f"takedown must be one of the built-in works {sorted(WORKS)} (got {args.takedown!r})"
        )


def _check_caption(args: Any) -> None:
    if args.erase not in args.concepts:
        raise UsageError(f"erase must be one of concepts {args.concepts} (got {args.erase!r})")


@dataclass(frozen=True)
class Demo:
    """One built-in demo: what it shows, what it parses, what runs it."""

    help: str
    configs: tuple[str, ...]
    run: str
    check: Callable[[Any], None] | None = None


DEMOS: dict[str, Demo] = {
    "pii": Demo(
        "memorise -> forget -> verify on the fictitious-PII corpus (make demo)",
        ("genforget.demos.options:DemoArgs", UNLEARN),
        "genforget.demos.pii:run_demo",
    ),
    "diffusion": Demo(
        "erase one digit from a class-conditional digits DDPM (make demo-diffusion)",
        ("genforget.demos.options:DiffusionDemoArgs", UNLEARN, DIFFUSION),
        "genforget.demos.diffusion:run_diffusion_demo",
        _check_digit,
    ),
    "diffusion-sd": Demo(
        "erase one caption from a tiny Stable Diffusion pipeline (make demo-diffusion-sd)",
        ("genforget.demos.options:SDDemoArgs", UNLEARN, DIFFUSION),
        "genforget.demos.diffusion_sd:run_sd_demo",
        _check_caption,
    ),
    "diffusion-copyright": Demo(
        "take down a memorised training image from a tiny text-to-image model (make demo-diffusion-copyright)",
        ("genforget.demos.options:ImageCopyrightDemoArgs", UNLEARN, DIFFUSION),
        "genforget.demos.image_copyright:run_image_copyright_demo",
        _check_work,
    ),
    "request": Demo(
        "a deletion request end to end: locate, unlearn, verify, certify (make demo-request)",
        ("genforget.demos.options:RequestDemoArgs", REQUEST_UNLEARN),
        "genforget.demos.request:run_request_demo",
    ),
    "copyright": Demo(
        "a copyright takedown of one play on tiny Shakespeare, every LM method (make demo-copyright)",
        ("genforget.demos.options:CopyrightDemoArgs", UNLEARN),
        "genforget.demos.copyright:run_copyright_demo",
    ),
    "poison": Demo(
        "remove a planted backdoor by unlearning the poisoned records (make demo-poison)",
        ("genforget.demos.options:PoisonDemoArgs", UNLEARN),
        "genforget.demos.poison:run_poison_demo",
    ),
    "bias": Demo(
        "remove a learned association with a protected attribute (make demo-bias)",
        ("genforget.demos.options:BiasDemoArgs", REQUEST_UNLEARN),
        "genforget.demos.bias:run_bias_demo",
    ),
}


# Older names kept working: ``genforget demo image-copyright`` is the diffusion-copyright demo.
ALIASES: dict[str, str] = {"image-copyright": "diffusion-copyright"}


def _resolve(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def usage() -> str:
    width = max(map(len, DEMOS))
    lines = [f"  {n:<{width}}  {d.help}" for n, d in DEMOS.items()]
    return (
        "usage: genforget demo <name> [--config x.yaml] [--field value ...]  (genforget demo <name> --help: "
        "its options)\n\ndemos:\n"
        + "\n".join(lines)
        + "".join(f"\n  ({old}: the old name of {new})" for old, new in ALIASES.items())
    )


def demo_main(argv: list[str] | None = None) -> int:
    """``genforget demo <name> [--config x.yaml] [--field value ...]``: exit 0 when every gating
    check of the demo passes, 1 when one fails, 2 on a usage error."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv and argv[0] in ALIASES:
        argv = [ALIASES[argv[0]], *argv[1:]]
    if not argv or argv[0] not in DEMOS:
        got = repr(argv[0]) if argv else "nothing"
        print(
            f"error: genforget demo needs one of {', '.join(DEMOS)} (got {got})\n{usage()}", file=sys.stderr
        )
        return 2
    demo = DEMOS[argv[0]]
    try:
        configs = parse_config(tuple(_resolve(c) for c in demo.configs), argv[1:])
        if demo.check is not None:
            demo.check(configs[0])
        report = _resolve(demo.run)(*configs)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from genforget.evaluation.report import checks_pass

    return 0 if checks_pass(report["checks"]) else 1
