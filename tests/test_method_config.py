"""Per-method configuration: shared fields in UnlearnConfig, each method's own in its own
dataclass, chosen by ``method``; and a method added from outside the package in one file."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import torch

import genforget
from genforget.cli.args import parse_config
from genforget.config import UnlearnConfig, UsageError
from genforget.methods.registry import METHODS


def test_the_method_picks_its_config_class():
    rmu = UnlearnConfig(method="rmu", rmu_layer=2)
    assert type(rmu).__name__ == "RMUConfig" and rmu.rmu_layer == 2 and not hasattr(rmu, "beta")
    npo = UnlearnConfig()  # the default method, npo, with its beta
    assert type(npo).__name__ == "NPOConfig" and npo.beta == 0.1
    assert type(UnlearnConfig(method="grad_ascent")) is UnlearnConfig  # nothing of its own
    assert copy.deepcopy(rmu) == rmu and type(copy.deepcopy(rmu)) is type(rmu)


def test_another_methods_field_is_refused_by_name():
    with pytest.raises(ValueError, match="'beta' is a field of npo.*not of 'rmu'"):
        UnlearnConfig(method="rmu", beta=0.3)
    with pytest.raises(ValueError, match="Did you mean 'rmu_layer'"):
        UnlearnConfig(method="rmu", rmu_layr=2)
    with pytest.raises(UsageError, match="'whp_alpha' is a field of whp, not of 'npo'"):
        parse_config((UnlearnConfig,), ["--whp_alpha", "3"])


def test_replace_switches_method_keeping_shared_and_common_fields():
    base = UnlearnConfig(method="npo", beta=0.5, learning_rate=2e-3)
    simnpo = dataclasses.replace(base, method="simnpo", gamma=1.0)
    assert type(simnpo).__name__ == "SimNPOConfig" and (simnpo.beta, simnpo.gamma) == (0.5, 1.0)
    rmu = dataclasses.replace(base, method="rmu")  # beta is NPO's: dropped, shared fields kept
    assert type(rmu).__name__ == "RMUConfig" and rmu.learning_rate == 2e-3 and not hasattr(rmu, "beta")


def test_method_help_lists_shared_fields_and_only_its_own():
    out = subprocess.run(
        [sys.executable, "-m", "genforget", "unlearn", "--method", "rmu", "--help"],
        capture_output=True,
        text=True,
    ).stdout
    assert "--rmu_layer" in out and "--learning_rate" in out and "RMUConfig: rmu's own" in out
    for other in ("--beta", "--whp_alpha", "--newton_damping", "--esd_eta"):
        assert other not in out, other
    npo = subprocess.run(
        [sys.executable, "-m", "genforget", "unlearn", "--help"], capture_output=True, text=True
    ).stdout
    assert "--beta" in npo and "--rmu_layer" not in npo


def test_a_method_from_outside_the_package_is_one_class_and_one_register_call():
    # What docs/adding-a-method.md shows: a config dataclass with the method's hyperparameter,
    # the method naming it, one register call; YAML/CLI/API then know the field.
    @dataclass
    class ScaledGAConfig(UnlearnConfig):
        ga_scale: float = field(default=2.0, metadata={"help": "multiplier of the ascent term"})

    @genforget.register("_scaled_ga")
    class ScaledGA(genforget.methods.base.Method):
        config_class = ScaledGAConfig

        def forget_loss(self, forget):
            return -self.config.ga_scale * forget.nll.mean()

    try:
        (cfg,) = parse_config((UnlearnConfig,), ["--method", "_scaled_ga", "--ga_scale", "3"])
        assert isinstance(cfg, ScaledGAConfig) and cfg.ga_scale == 3.0
        nll = torch.tensor([1.0, 3.0])
        loss = ScaledGA(cfg).forget_loss(genforget.Scores(logp=-nll, nll=nll))
        assert loss.item() == pytest.approx(-6.0)  # -3 * mean(1, 3)
        with pytest.raises(ValueError, match="'ga_scale' is a field of _scaled_ga"):
            UnlearnConfig(method="npo", ga_scale=1.0)
    finally:
        del METHODS["_scaled_ga"]


def test_the_configuration_page_is_generated_from_the_code():
    from pathlib import Path

    from genforget.cli.config_docs import render

    page = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert page.read_text() == render(), "docs/configuration.md is stale: run `make config-docs`"
    assert "### `RMUConfig` (rmu)" in render() and "`rmu_layer`" in render()


def test_one_settings_mapping_for_a_sweep_over_methods():
    from genforget.config import settings_for

    sweep = {"learning_rate": 1e-3, "beta": 0.2, "rmu_alpha": 10.0}
    assert settings_for("npo", sweep) == {"learning_rate": 1e-3, "beta": 0.2}
    assert settings_for("rmu", sweep) == {"learning_rate": 1e-3, "rmu_alpha": 10.0}
    with pytest.raises(ValueError, match="Did you mean 'rmu_alpha'"):
        settings_for("rmu", {"rmu_alhpa": 1.0})  # a typo is still an error
