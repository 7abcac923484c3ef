"""The ``genforget`` console script: dispatch, usage errors (exit 2), and verbs reaching their mains."""

from __future__ import annotations

import subprocess
import sys

from genforget.cli.main import VERBS, main


def test_no_verb_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "verbs:" in capsys.readouterr().out
    assert main(["--help"]) == 0


def test_unknown_verb_says_did_you_mean(capsys):
    assert main(["evl"]) == 2
    assert "Did you mean 'eval'?" in capsys.readouterr().err


def test_every_verb_resolves_to_a_callable():
    import importlib

    for verb, (target, _) in VERBS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), verb


def test_verbs_reach_their_mains_with_usage_errors(capsys, tmp_path):
    assert main(["eval", "--output_dir", str(tmp_path / "r")]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["demo", "nope"]) == 2
    assert main(["unlearn", "--output_dir", str(tmp_path / "u")]) == 2
    assert not (tmp_path / "r").exists() and not (tmp_path / "u").exists()


def test_console_module_runs_as_a_process():
    r = subprocess.run([sys.executable, "-m", "genforget.cli.main", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown verb" in r.stderr
