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
