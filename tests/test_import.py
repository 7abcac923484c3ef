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


def test_no_lazy_name_turns_into_a_module_once_every_submodule_is_imported():
    # Importing a submodule binds the package attribute of its name; a public name that is also a
    # submodule's (genforget.requests.locate) would then be the module, not the function.
    code = """
import importlib, pkgutil, types
for pkg in ("genforget", "genforget.cli", "genforget.diffusion", "genforget.requests"):
    package = importlib.import_module(pkg)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("__"):
            importlib.import_module(f"{pkg}.{info.name}")
    bad = [n for n in package.__all__ if isinstance(getattr(package, n), types.ModuleType)]
    assert not bad, (pkg, bad)
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_attach_refuses_a_name_that_is_also_a_submodule():
    import pytest

    from genforget._lazy import attach

    with pytest.raises(ValueError, match="genforget.requests.locate is a submodule too"):
        attach("genforget.requests", {"genforget.requests.locate": ["locate"]})
