"""Architecture edges: naming the block list, LoRA names that match nothing, and tokenizers with
more ids than the embedding has rows."""

from __future__ import annotations

import pytest
import torch

import genforget
from genforget.adapters import resolve_lora_targets
from genforget.config import UnlearnConfig
from genforget.lm.arch import decoder_layers
from genforget.lm.families import tiny_model
from genforget.lm.trainer import check_tokenizer_matches, unlearn_lm
from genforget.methods.rmu import RMU

FORGET = [{"prompt": "Alice's phone number is", "target": " 555-0100."}]


class Wrapped(torch.nn.Module):
    """A model whose blocks sit in a list with an unusual name and no _no_split_modules."""

    def __init__(self, inner):
        super().__init__()
        self.stack = torch.nn.ModuleList(list(inner.model.layers))
        self.other = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(5)])


def test_layer_pattern_names_the_block_list(tokenizer):
    model = tiny_model("gpt2", tokenizer)
    assert [n for n, _ in decoder_layers(model)] == ["transformer.h.0", "transformer.h.1"]
    assert decoder_layers(model, "transformer.h") == decoder_layers(model)
    odd = Wrapped(tiny_model("llama", tokenizer))
    with pytest.raises(ValueError, match="no decoder block list found.*'stack', 'other'.*set layer_pattern"):
        decoder_layers(odd)
    assert [n for n, _ in decoder_layers(odd, "stack")] == ["stack.0", "stack.1"]
    with pytest.raises(ValueError, match="layer_pattern 'model.blocks' names no ModuleList"):
        decoder_layers(model, "model.blocks")
    # RMU reads it too: its weights are the named list's MLP output projections.
    rmu = RMU(UnlearnConfig(method="rmu", layer_pattern="stack"))
    assert rmu.trainable_modules(odd) == ["stack.0.mlp.down_proj", "stack.1.mlp.down_proj"]
    rmu = RMU(UnlearnConfig(method="rmu", rmu_modules=["mlp.c_fc"]))
    assert rmu.trainable_modules(tiny_model("gpt2", tokenizer)) == [
        "transformer.h.0.mlp.c_fc",
        "transformer.h.1.mlp.c_fc",
    ]


def test_lora_names_that_match_nothing_list_the_models_linear_layers(tokenizer):
    model = tiny_model("gpt2", tokenizer)
    with pytest.raises(ValueError) as e:
        resolve_lora_targets(model, ["q_proj", "v_proj"])
    msg = str(e.value)
    assert "lora_target_modules ['q_proj', 'v_proj'] match no linear layer of this GPT2LMHeadModel" in msg
    assert "c_attn: transformer.h.*.attn.c_attn" in msg
    assert "c_proj: transformer.h.*.attn.c_proj, transformer.h.*.mlp.c_proj" in msg
    assert "leave lora_target_modules empty" in msg
    with pytest.warns(UserWarning, match=r"\['q_proj'\] match nothing .* LoRA wraps only \['c_attn'\]"):
        partial = resolve_lora_targets(model, ["c_attn", "q_proj"])
    assert (partial.modules, partial.unmatched, partial.rule) == (
        ["c_attn"],
        ["q_proj"],
        "lora_target_modules",
    )


def _with_extra_tokens(tokenizer, tokens: list[str], special: bool):
    import copy

    tok = copy.deepcopy(tokenizer)
    if special:
        tok.add_special_tokens({"additional_special_tokens": tokens})
    else:
        tok.add_tokens(tokens)
    return tok


def test_a_tokenizer_longer_than_the_embedding(tokenizer, tmp_path):
    model = tiny_model("qwen2", tokenizer)
    # Qwen2Tokenizer's case: special tokens beyond the table that the data never produces.
    tok = _with_extra_tokens(tokenizer, ["<|endoftext|>"], special=True)
    assert len(tok) == model.get_input_embeddings().num_embeddings + 1
    check_tokenizer_matches(model, tok)
    cfg = UnlearnConfig(max_steps=1)
    unlearn_lm(model, tok, FORGET, None, cfg)
    with pytest.raises(
        ValueError, match=r"forget example 1 holds token id 300, beyond the model's embedding of 300"
    ):
        unlearn_lm(model, tok, [*FORGET, {"text": "bye <|endoftext|>"}], None, cfg)
    # Ordinary tokens beyond it: another model's tokenizer, said so.
    with pytest.raises(ValueError, match="1 of the ids beyond it are ordinary tokens text can produce"):
        check_tokenizer_matches(model, _with_extra_tokens(tokenizer, ["zzzq"], special=False))
    # The pad token beyond it: refused with the fix; genforget.load_model resizes and says so.
    tok.pad_token = "<|endoftext|>"
    with pytest.raises(ValueError, match="one of them is the pad token .* set tokenizer.pad_token"):
        check_tokenizer_matches(model, tok)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="the embedding was resized to the tokenizer's 301 tokens"):
        loaded, loaded_tok = genforget.load_model(tmp_path)
    assert loaded.get_input_embeddings().num_embeddings == len(loaded_tok) == 301


def test_lora_on_a_causal_lm_is_rank_stabilised_unless_turned_off(tokenizer):
    """Scale alpha/sqrt(r) (rsLoRA): at alpha 16, r 8, each adapter's update counts sqrt(8) times
    what alpha/r gave, so NPO at full fine-tuning's learning rate forgets within its budget."""
    from genforget.adapters import add_lora

    for rs, scale in ((True, 16 / 8**0.5), (False, 16 / 8)):
        cfg = UnlearnConfig(method="npo", use_lora=True, lora_r=8, lora_alpha=16, use_rslora=rs)
        peft = add_lora(tiny_model("phi", tokenizer), cfg)
        scales = [m.scaling["default"] for m in peft.modules() if hasattr(m, "lora_A")]
        assert len(scales) == 12 and scales == pytest.approx([scale] * 12)  # q k v dense fc1 fc2, 2 blocks
        assert peft.peft_config["default"].use_rslora is rs  # saved in adapter_config.json
