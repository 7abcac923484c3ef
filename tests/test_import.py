"""``import genforget`` stays light: heavy optional stacks load only when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("peft", "bitsandbytes", "diffusers", "matplotlib", "sklearn", "scipy", "nltk")


def test_import_genforget_pulls_in_no_heavy_optional_module():
    code = f"import sys, genforget; print([m for m in {HEAVY!r} if m in sys.modules])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout


def test_peft_still_loads_when_lora_is_used(tiny_lm):
    from genforget.adapters import add_lora, is_peft_model
    from genforget.config import UnlearnConfig

    assert not is_peft_model(tiny_lm)
    model = add_lora(tiny_lm, UnlearnConfig(use_lora=True, lora_r=2))
    assert is_peft_model(model) and "peft" in sys.modules


def test_lazy_names_resolve_once_and_unknown_ones_raise(monkeypatch):
    import types

    import pytest

    from genforget._lazy import attach

    pkg = types.ModuleType("fakepkg")
    monkeypatch.setitem(sys.modules, "fakepkg", pkg)
    pkg.__getattr__, pkg.__dir__, pkg.__all__ = attach(
        "fakepkg", {"json": ["dumps", "loads"], "os.path": ["join"]}
    )
    assert pkg.__all__ == ["dumps", "join", "loads"]
    assert "dumps" not in vars(pkg) and "join" in pkg.__dir__()
    import json

    assert pkg.dumps is json.dumps and vars(pkg)["dumps"] is json.dumps  # kept: the next lookup is plain
    with pytest.raises(AttributeError, match="'fakepkg' has no attribute 'nope'"):
        _ = pkg.nope
