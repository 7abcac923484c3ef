"""What engine runs, and what the loop does under one: detection, refusals, batches, errors.

The real FSDP / DeepSpeed runs are in test_sharded.py; these are the fast checks around them.
"""

from __future__ import annotations

import json
import os
import types
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from accelerate import DistributedType
from test_recipes import ROOT, _args

from genforget.adapters import check_gathered
from genforget.cli import unlearn_main
from genforget.config import UnlearnConfig
from genforget.lm.data import Collator
from genforget.lm.distributed import (
    EngineMismatch,
    check_engine,
    configure_engine,
    cpu_adapted_config,
    is_quantized,
    sharded_batches,
)


def _feats(n: int) -> list[dict]:
    return [{"input_ids": [1, 2 + i % 5], "labels": [1, 2 + i % 5], "idx": i} for i in range(n)]


def _global(n: int, batch: int, world: int, steps: int) -> list[list[int]]:
    """The examples of each step over all processes, as ``world`` processes draw them."""
    its = [
        sharded_batches(
            _feats(n), batch, world, r, Collator(0), torch.Generator().manual_seed(0), torch.device("cpu")
        )
        for r in range(world)
    ]
    # Each process has its own generator copy seeded alike, as each rank does in a launch.
    return [sum((next(it)["idx"].tolist() for it in its), []) for _ in range(steps)]


def test_two_processes_draw_the_batches_one_does_with_nothing_padded_or_dropped():
    # 25 examples at global batch 8 (issue 20): accelerate padded the 1-example last batch.
    one, two = _global(25, 8, 1, 7), _global(25, 4, 2, 7)
    assert one == two
    assert all(len(b) == 8 for b in one)  # never a short last batch
    flat = sum(one, [])
    assert sorted(flat[:25]) == list(range(25))  # every example once before any repeats
    assert sorted(flat[25:50]) == list(range(25))


def test_a_set_smaller_than_a_global_batch_is_used_whole_and_uneven_splits_warn():
    assert [sorted(b) for b in _global(6, 8, 1, 2)] == [list(range(6))] * 2
    assert _global(6, 4, 2, 3) == _global(6, 8, 1, 3)
    with pytest.warns(UserWarning, match="do not split evenly over 4 processes"):
        steps = _global(6, 4, 4, 2)
    assert all(len(b) == 4 and len(set(b)) == 4 for b in steps)
    with pytest.raises(ValueError, match="fewer than the 4 processes"):
        _global(3, 1, 4, 1)


def _info(**kw) -> dict:
    base = {"requested": None, "distributed_type": "MULTI_CPU", "world_size": 2}
    return {**base, **kw}


def test_an_engine_asked_for_but_not_running_warns_or_fails_when_required():
    assert check_engine(_info()) is None
    assert (
        check_engine(_info(requested="FSDP", distributed_type="FSDP", param_shares={"local_share": 0.5}))
        is None
    )
    with pytest.warns(UserWarning, match="asks for FSDP but accelerate runs MULTI_CPU"):
        assert "no sharding" in check_engine(_info(requested="FSDP"))
    with pytest.raises(EngineMismatch, match="asks for DEEPSPEED but accelerate runs MULTI_CPU"):
        check_engine(_info(requested="DEEPSPEED"), require=True)
    # The engine runs but holds everything on each process: said too.
    z3 = _info(
        requested="DEEPSPEED", distributed_type="DEEPSPEED", zero_stage=3, param_shares={"local_share": 1.0}
    )
    with pytest.warns(UserWarning, match="nothing is sharded"):
        check_engine(z3)
    z2 = dict(z3, zero_stage=2, optimizer_state_share=0.5)
    assert check_engine(z2) is None  # ZeRO-2 keeps parameters whole by design


def _accelerator(kind: str, ds_config: dict | None = None, fsdp: int = 2):
    plugin = None
    if ds_config is not None:
        plugin = types.SimpleNamespace(
            deepspeed_config=ds_config, is_auto=lambda key: ds_config.get(key) == "auto"
        )
    return types.SimpleNamespace(
        distributed_type=DistributedType(kind),
        is_main_process=True,
        state=types.SimpleNamespace(
            deepspeed_plugin=plugin, fsdp_plugin=types.SimpleNamespace(fsdp_version=fsdp)
        ),
    )


def test_sharded_engines_refuse_quantized_bases_and_multi_backward_remedies(tiny_lm):
    cfg = UnlearnConfig()
    configure_engine(_accelerator("MULTI_CPU"), UnlearnConfig(sam_rho=0.1), tiny_lm)  # DDP: all allowed
    tiny_lm.is_loaded_in_4bit = True
    assert is_quantized(tiny_lm)
    with pytest.raises(ValueError, match="QLoRA\\) runs on one process or under DDP"):
        configure_engine(_accelerator("FSDP"), cfg, tiny_lm)
    del tiny_lm.is_loaded_in_4bit
    assert not is_quantized(tiny_lm)
    import bitsandbytes as bnb

    # Whatever loaded it: a bitsandbytes 4-bit parameter is recognised by its type.
    tiny_lm.register_parameter("q", bnb.nn.Params4bit(torch.zeros(64, 64), requires_grad=False))
    with pytest.raises(ValueError, match="4-/8-bit"):
        configure_engine(_accelerator("DEEPSPEED", {}), cfg, tiny_lm)
    del tiny_lm.q
    with pytest.raises(
        ValueError,
        match="sam_rho / quant_aware_weight / relearn_aware_steps are not supported under DEEPSPEED",
    ):
        configure_engine(_accelerator("DEEPSPEED", {}), UnlearnConfig(sam_rho=0.1), tiny_lm)
    with pytest.raises(ValueError, match="undo_alpha is not supported under FSDP"):
        configure_engine(_accelerator("FSDP"), UnlearnConfig(undo_alpha=0.5), tiny_lm)
    from genforget.methods.registry import get_method

    rmu = UnlearnConfig(method="rmu")
    with pytest.raises(ValueError, match="rmu without LoRA is not supported when parameters are sharded"):
        configure_engine(
            _accelerator("DEEPSPEED", {"zero_optimization": {"stage": 3}}),
            rmu,
            tiny_lm,
            get_method("rmu")(rmu),
        )
    # ZeRO-2 keeps parameters whole, and with LoRA RMU's frozen pass is the adapter switched off.
    configure_engine(
        _accelerator("DEEPSPEED", {"zero_optimization": {"stage": 2}}), rmu, tiny_lm, get_method("rmu")(rmu)
    )
    rmu_lora = UnlearnConfig(method="rmu", use_lora=True)
    configure_engine(_accelerator("FSDP"), rmu_lora, tiny_lm, get_method("rmu")(rmu_lora))
    with pytest.raises(ValueError, match="FSDP1 \\(fsdp_version 1\\) is not supported"):
        configure_engine(_accelerator("FSDP", fsdp=1), cfg, tiny_lm)


def test_deepspeed_clips_at_max_grad_norm_with_the_run_batch_and_gathers_zero3_weights(tiny_lm):
    ds = {
        "gradient_clipping": 1.0,
        "train_micro_batch_size_per_gpu": "auto",
        "zero_optimization": {"stage": 3},
    }
    with pytest.warns(UserWarning, match="gradient_clipping 1.0 replaced by max_grad_norm 0.3"):
        configure_engine(
            _accelerator("DEEPSPEED", ds), UnlearnConfig(max_grad_norm=0.3, batch_size=5), tiny_lm
        )
    assert ds["gradient_clipping"] == 0.3 and ds["train_micro_batch_size_per_gpu"] == 5
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_saving_ungathered_shards_fails_before_writing():
    # What ZeRO-3 leaves in a module outside a gather: shape-[0] tensors.
    with pytest.raises(RuntimeError, match="1 of 2 tensors are shards.*not gathered"):
        check_gathered({"a.lora_A.weight": torch.zeros(0), "a.lora_B.weight": torch.zeros(2, 2)}, "adapter")
    with pytest.raises(RuntimeError, match="it is empty"):
        check_gathered({}, "adapter")
    check_gathered({"w": torch.zeros(2)}, "model")


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "recipes/accelerate").glob("*.yaml")))
def test_each_shipped_accelerate_config_has_a_cpu_adaptation(name, tmp_path):
    shipped = yaml.safe_load((ROOT / "recipes/accelerate" / name).read_text())
    path = cpu_adapted_config(ROOT / "recipes/accelerate" / name, tmp_path / name)
    cfg = yaml.safe_load(path.read_text())
    assert cfg["num_processes"] == 2 and cfg.get("mixed_precision", "no") == "no"
    if shipped["distributed_type"] == "DEEPSPEED":
        ds = json.loads(Path(cfg["deepspeed_config"]["deepspeed_config_file"]).read_text())
        zero = ds["zero_optimization"]
        assert zero["stage"] == shipped["deepspeed_config"]["zero_stage"]
        assert zero.get("stage3_param_persistence_threshold", 0) == 0
    elif shipped["distributed_type"] == "FSDP":
        assert cfg["fsdp_config"] == shipped["fsdp_config"]  # version, wrap policy, reshard: as shipped
    else:  # DDP and single-process configs: two gloo processes (MULTI_CPU would launch one)
        assert cfg["distributed_type"] == "MULTI_GPU"


@pytest.fixture
def asked_for_fsdp(monkeypatch):
    """This process's environment as ``accelerate launch`` with an FSDP config leaves it; any
    variable accelerate sets meanwhile is dropped afterwards."""
    monkeypatch.setattr(os, "environ", dict(os.environ, ACCELERATE_USE_FSDP="true", FSDP_VERSION="2"))


def test_recipe_names_the_engine_that_ran_and_require_engine_refuses_a_fallback(
    asked_for_fsdp, victim_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    assert unlearn_main(_args(victim_dir, out, "--require_engine", "true")) == 2
    assert "asks for FSDP but accelerate runs NO" in capsys.readouterr().err and not out.exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert unlearn_main(_args(victim_dir, out)) == 0
    assert any("asks for FSDP but accelerate runs NO" in str(w.message) for w in caught)
    engine = json.loads((out / "genforget_run.json").read_text())["engine"]
    assert engine["requested"] == "FSDP" and engine["distributed_type"] == "NO" and engine["world_size"] == 1
    assert capsys.readouterr().out.startswith("engine: NO, 1 process(es) on cpu")


def test_errors_from_torch_keep_their_type_and_the_process_group_is_released(
    victim_dir, tmp_path, monkeypatch
):
    from accelerate import Accelerator

    ended = []
    monkeypatch.setattr(Accelerator, "end_training", lambda self: ended.append(True))

    def broken_step(self, *a, **k):
        raise ValueError("a fault inside the optimizer")  # torch's ValueErrors are not usage errors

    monkeypatch.setattr(torch.optim.AdamW, "step", broken_step)
    with pytest.raises(ValueError, match="a fault inside the optimizer"):
        unlearn_main(_args(victim_dir, tmp_path / "run", "--divergence_guard", "false"))
    assert ended == [True] and not (tmp_path / "run").exists()
