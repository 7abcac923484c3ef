"""The one victim cache every demo uses, the table the demos are dispatched from, and their checks."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from genforget.train_cache import INFO, cached_info, train_or_load


def _cache(out: Path, key: dict, calls: list, fail: bool = False):
    def train():
        calls.append(1)
        return {"w": len(calls)}, {"note": "made"}

    def save(model, tmp: Path) -> None:
        (tmp / "weights.json").write_text(json.dumps(model))
        if fail:
            raise KeyboardInterrupt  # killed while saving

    return train_or_load(out, key, train, save, lambda d: json.loads((d / "weights.json").read_text()))


def test_trains_once_then_loads_and_retrains_on_a_new_key(tmp_path):
    calls: list = []
    model, info = _cache(tmp_path / "v", {"a": 1}, calls)
    assert model == {"w": 1} and not info["cached"] and info["note"] == "made" and info["seconds"] >= 0
    model, info = _cache(tmp_path / "v", {"a": 1}, calls)
    assert model == {"w": 1} and info["cached"] and len(calls) == 1
    saved = json.loads((tmp_path / "v" / INFO).read_text())
    assert saved["key"] == {"a": 1} and len(saved["files_sha256"]) == 64
    model, info = _cache(tmp_path / "v", {"a": 2}, calls)  # another config or data: a miss
    assert model == {"w": 2} and not info["cached"] and len(calls) == 2


def test_a_model_edited_since_training_is_not_reused(tmp_path):
    calls: list = []
    _cache(tmp_path / "v", {"a": 1}, calls)
    (tmp_path / "v" / "weights.json").write_text(json.dumps({"w": 99}))
    assert cached_info(tmp_path / "v", {"a": 1}) is None
    model, info = _cache(tmp_path / "v", {"a": 1}, calls)
    assert model == {"w": 2} and not info["cached"]


def test_a_save_killed_halfway_leaves_the_previous_model(tmp_path):
    calls: list = []
    _cache(tmp_path / "v", {"a": 1}, calls)
    with pytest.raises(KeyboardInterrupt):
        _cache(tmp_path / "v", {"a": 2}, calls, fail=True)
    assert json.loads((tmp_path / "v" / "weights.json").read_text()) == {"w": 1}
    assert cached_info(tmp_path / "v", {"a": 1}) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["v"]  # no half-written sibling left


def test_demo_help_lists_every_demo_and_every_entry_resolves(capsys):
    from genforget.cli.demos import DEMOS, _resolve, demo_main

    assert demo_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in DEMOS)
    assert set(DEMOS) == {
        "pii",
        "diffusion",
        "diffusion-sd",
        "diffusion-copyright",
        "request",
        "copyright",
        "poison",
        "bias",
    }
    for demo in DEMOS.values():
        assert all(dataclasses.is_dataclass(_resolve(c)) for c in demo.configs)
        assert callable(_resolve(demo.run))
    assert demo_main(["nope"]) == 2 and "diffusion-sd" in capsys.readouterr().err


def test_every_demos_options_come_from_one_light_module_with_the_shared_fields_once():
    import torch

    from genforget.cli.args import parse_config
    from genforget.cli.demos import DEMOS, _resolve
    from genforget.demos import options

    own = {name: _resolve(demo.configs[0]) for name, demo in DEMOS.items()}
    for name, cls in own.items():
        assert cls.__module__ == "genforget.demos.options", name
        assert issubclass(cls, options.DemoThreadArgs) and cls().num_threads == 1, name
        # a field declared in a shared set is not declared again (its default would drift)
        assert "num_threads" not in inspect.get_annotations(cls), name
    for cls in (options.BiasDemoArgs, options.PoisonDemoArgs):
        args = cls()
        assert (args.relearn_learning_rate, args.relearn_batch_size) == (1e-3, 8)
    before = torch.get_num_threads()
    try:
        (args, _) = parse_config(
            (own["poison"], _resolve(DEMOS["poison"].configs[1])), ["--num_threads", "3"]
        )
        args.set_threads()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_demo_option_checks_are_usage_errors(tmp_path, capsys):
    from genforget.cli.demos import demo_main

    out = tmp_path / "dd"
    assert demo_main(["diffusion", "--erase_class", "11", "--output_dir", str(out)]) == 2
    assert "erase_class must be a digit" in capsys.readouterr().err and not out.exists()


def test_bar_checks_apply_the_bar_they_show():
    from genforget.demos.checks import bar_checks

    got = bar_checks([("a", 0.1, "<= 0.10"), ("b", 0.2, ">= 0.90 (informational)"), ("c", 1, "== 1", False)])
    assert got == [
        {"name": "a", "value": 0.1, "bar": "<= 0.10", "ok": True},
        {"name": "b", "value": 0.2, "bar": ">= 0.90 (informational)", "ok": False, "gate": False},
        {"name": "c", "value": 1.0, "bar": "== 1", "ok": False},
    ]


def test_relearn_ladders_from_the_command_line_are_numbers():
    from types import SimpleNamespace

    from genforget.config import UsageError
    from genforget.demos.checks import check_budgets

    args = SimpleNamespace(relearn_budgets=["0", "3"])  # as parse_config gives a list field
    assert check_budgets(args, "relearn_budgets") == [0, 3] and args.relearn_budgets == [0, 3]
    for bad in (["3", "0"], ["1", "2"], ["x"]):
        with pytest.raises(UsageError, match="relearn_budgets"):
            check_budgets(SimpleNamespace(relearn_budgets=bad), "relearn_budgets")


def test_old_demo_name_is_an_alias_of_the_new(tmp_path, capsys):
    """``genforget demo image-copyright`` runs the diffusion-copyright demo: the same option
    check answers (exit 2) under both names, and neither writes anything."""
    from genforget.cli.demos import ALIASES, demo_main

    assert ALIASES == {"image-copyright": "diffusion-copyright"}
    for name in ("diffusion-copyright", "image-copyright"):
        out = tmp_path / name
        assert demo_main([name, "--takedown", "mona-lisa", "--output_dir", str(out)]) == 2
        assert "takedown must be one of the built-in works" in capsys.readouterr().err
        assert not out.exists()
