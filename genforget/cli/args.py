"""Command-line and YAML parsing of the dataclass configs.

``parse_config((ScriptArgs, UnlearnConfig))`` reads ``--config x.yaml`` and then ``--field value``
flags; every YAML key must be a field of one of the dataclasses (a typo is an error with a "did
you mean", exit code 2), in the spirit of ``HfArgumentParser`` and trl's ``TrlParser``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from genforget.config import (
    UnlearnConfig,
    UsageError,
    config_fields,
    foreign_field_message,
    method_config_class,
    method_field_owners,
)
from genforget.methods.registry import did_you_mean


def _arg_type(tp: Any) -> tuple[Any, dict]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if tp is bool:
        return (lambda s: s.lower() in ("1", "true", "yes", "on")), {}
    if origin is list:
        return str, {"nargs": "+"}
    return tp, {}


def _unlearn_cls(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, UnlearnConfig)


def _help(f: dataclasses.Field, defaults: dict) -> str:
    text = f.metadata.get("help") or ""
    if f.name in defaults:
        default = defaults[f.name]
    elif f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return text.replace("%", "%%")
    return f"{text} (default: {default!r})".replace("%", "%%")


def parse_config(classes: tuple[type, ...], argv: list[str] | None = None) -> tuple:
    """Build each dataclass from ``--config`` YAML, then command-line overrides.

    An :class:`UnlearnConfig` among ``classes`` takes the shared fields plus those of the method
    named by ``--method`` or the YAML's ``method`` (so ``--method rmu --help`` lists RMU's own
    fields and no other method's). Raises :class:`UsageError` naming the bad key or file.
    """
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--method", default=None)
    known, rest = pre.parse_known_args(argv)
    yaml_values: dict[str, Any] = {}
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            raise UsageError(f"--config: file not found: {path}")
        try:
            yaml_values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(e, "problem", None) or "syntax error"
            raise UsageError(f"--config {where}: not valid YAML ({problem}); fix that line") from e
        if not isinstance(yaml_values, dict):
            raise UsageError(f"--config {path}: expected a mapping of field: value")
    method = known.method or yaml_values.get("method")
    fields: dict[type, list[dataclasses.Field]] = {}
    hints: dict[type, dict] = {}
    for cls in classes:
        try:
            fields[cls] = config_fields(cls, method)
        except ValueError as e:  # an unknown method name
            raise UsageError(f"--method: {e}") from e
        target = (
            method_config_class(method or cls.__dataclass_fields__["method"].default)
            if _unlearn_cls(cls)
            else cls
        )
        hints[cls] = typing.get_type_hints(target)
    all_names = [f.name for cls in classes for f in fields[cls]]
    unlearn = next((c for c in classes if _unlearn_cls(c)), None)

    def unknown(key: str, where: str) -> UsageError:
        if unlearn is not None and key in method_field_owners():
            m = method or unlearn.__dataclass_fields__["method"].default
            return UsageError(f"{where}: {foreign_field_message(key, m, all_names)}")
        return UsageError(f"{where}: unknown key {key!r}.{did_you_mean(key, all_names)}")

    for key in yaml_values:
        if key not in all_names:
            raise unknown(key, str(known.config))
    parser = argparse.ArgumentParser(description="genforget recipe", exit_on_error=False)
    parser.add_argument("--config", default=None, help="YAML file whose keys are the fields below")
    for cls in classes:
        defaults = getattr(cls, "DEFAULTS", None) or {}
        if _unlearn_cls(cls):
            shared = {f.name for f in dataclasses.fields(UnlearnConfig)}
            own = [f for f in fields[cls] if f.name not in shared]
            groups = [
                (f"{cls.__name__}: shared by every method", [f for f in fields[cls] if f.name in shared])
            ]
            if own:
                m = method or cls.__dataclass_fields__["method"].default
                groups.append((f"{method_config_class(m).__name__}: {m}'s own", own))
        else:
            groups = [(cls.__name__, fields[cls])]
        for title, group_fields in groups:
            group = parser.add_argument_group(title)
            for f in group_fields:
                conv, extra = _arg_type(hints[cls][f.name])
                group.add_argument(
                    f"--{f.name}", type=conv, default=argparse.SUPPRESS, help=_help(f, defaults), **extra
                )
    try:
        ns, unknown_args = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise UsageError(str(e)) from e
    if unknown_args:
        flag = unknown_args[0].lstrip("-").split("=")[0]
        raise (
            unknown(flag, f"unknown option {unknown_args[0]!r}")
            if unlearn and flag in method_field_owners()
            else UsageError(f"unknown option {unknown_args[0]!r}.{did_you_mean(flag, all_names)}")
        )
    cli = vars(ns)
    out = []
    for cls in classes:
        names = {f.name for f in fields[cls]}
        values = {k: v for k, v in yaml_values.items() if k in names}
        values.update({k: v for k, v in cli.items() if k in names})
        try:
            out.append(cls(**values))
        except (ValueError, TypeError) as e:
            raise UsageError(f"{cls.__name__}: {e}") from e
    return tuple(out)
