"""QLoRA on the CPU (issue 27): a 4-bit (NF4) base with a LoRA adapter, on tiny Qwen2 and
Mistral models that memorised six facts. Evaluation and the divergence guard score the model in
eval mode without gradients; bitsandbytes would repack its 4-bit layers for CPU inference there
(genforget.lm.quant) and break training: these tests would crash (Qwen2) or lose the retained
facts (Mistral) without the fix."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import torch
from zoo import FACTS, build_tokenizer, memorise

import genforget
from genforget.cli.main import main
from genforget.lm.quant import linear4bit_layers

pytest.importorskip("bitsandbytes")
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # its hub-kernel notice on import

FAMILIES = {"qwen2": "qwen2", "mistral": "sentencepiece"}  # family -> tokenizer convention
EXAMPLES = [{"prompt": p, "target": v} for p, v in FACTS]


def _build(family: str, tok):
    from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    kw = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    return (
        Qwen2ForCausalLM(Qwen2Config(**kw)) if family == "qwen2" else MistralForCausalLM(MistralConfig(**kw))
    )


@pytest.fixture(scope="module", params=list(FAMILIES))
def saved(request, tmp_path_factory, one_thread):
    family = request.param
    tok = build_tokenizer(FAMILIES[family])
    model = _build(family, tok)
    memorise(model, [tok(f"{p} {v}")["input_ids"] + [tok.eos_token_id] for p, v in FACTS])
    out = tmp_path_factory.mktemp(family)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return family, out


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = genforget.load_model(path, load_in_4bit=True, bnb_4bit_compute_dtype="float32")
    assert linear4bit_layers(model), "not loaded in 4 bits"
    return model, tok


def _rates(model, tok) -> tuple[float, float]:
    out = genforget.evaluate(model, tok, EXAMPLES[:2], EXAMPLES[2:])
    return out["forget_verbatim_extraction"], out["retain_verbatim_extraction"]


def test_qlora_forgets_and_keeps_retain(saved):
    family, path = saved
    model, tok = _load(path)
    assert _rates(model, tok) == (1.0, 1.0)  # an eval-mode, no-grad pass before training...
    packed = [
        getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in linear4bit_layers(model)
    ]
    assert not any(packed)  # ...left every 4-bit layer in its trainable layout
    codes = [m.weight.data.clone() for m in linear4bit_layers(model)]
    # lr 1e-3: with the rank-stabilised LoRA default an adapter moves ~2.8x further per step than
    # at alpha/r, and the 1e-2 this test used to need tripped the divergence guard on Mistral.
    res = genforget.unlearn(
        model, tok, EXAMPLES[:2], EXAMPLES[2:], method="npo", use_lora=True, learning_rate=1e-3,
        max_steps=30, calibration=False, return_history=True,
    )  # fmt: skip
    assert type(res.model).__name__ == "PeftModel"
    assert not any(r.get("diverged") for r in res.history)  # the guard ran and saw no collapse
    forget, retain = _rates(res.model, tok)
    assert forget <= 0.2 and retain >= 0.75, (family, forget, retain)
    # the 4-bit base is untouched: only the adapter learned
    assert all(
        torch.equal(a, m.weight.data) for a, m in zip(codes, linear4bit_layers(res.model), strict=True)
    )


def test_divergence_guard_fires_on_a_4bit_base(saved):
    family, path = saved
    model, tok = _load(path)
    res = genforget.unlearn(
        model, tok, EXAMPLES[:2], EXAMPLES[2:], method="grad_ascent", use_lora=True, learning_rate=0.3,
        max_steps=20, calibration=False, return_history=True,
    )  # fmt: skip
    trip = [r for r in res.history if r.get("diverged")]
    assert trip and trip[0]["restored_step"] < trip[0]["step"], family
    assert _rates(res.model, tok)[1] == 1.0  # retain restored with the last good adapter


def test_4bit_needs_lora_and_the_cli_path(saved, tmp_path):
    family, path = saved
    if family != "mistral":
        pytest.skip("the CLI path once, on the pad-less family")
    model, tok = _load(path)
    with pytest.raises(ValueError, match="use_lora: true"):
        genforget.unlearn(model, tok, EXAMPLES[:2], max_steps=1, calibration=False)
    data = tmp_path / "f.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES[:2]))
    argv = ["unlearn", "--model_name_or_path", str(path), "--forget_data", str(data), "--max_steps", "3",
            "--load_in_4bit", "true", "--bnb_4bit_compute_dtype", "float32"]  # fmt: skip
    assert main([*argv, "--output_dir", str(tmp_path / "a")]) == 2  # no --use_lora: a usage error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(
            [*argv, "--use_lora", "true", "--bnb_4bit_quant_type", "fp4", "--output_dir", str(tmp_path / "b")]
        )
    # 3 steps on a 4-bit base do not forget: saved, exit 3 (not a usage error), outcome recorded
    assert rc == 3
    rec = json.loads((tmp_path / "b/genforget_run.json").read_text())
    assert rec["saved_as"] == "adapter" and (tmp_path / "b/adapter_config.json").is_file()
    assert rec["outcome"]["status"] in ("partial", "unchanged")
    assert rec["quantization"]["bnb_4bit_quant_type"] == "fp4" and rec["quantization"]["load_in_4bit"]
