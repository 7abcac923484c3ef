"""Tiny random-init configs of the Hugging Face causal-LM families genforget is tested on.

The architecture grid (tests/test_families.py) and ``bench/families.py`` build each family from
:data:`FAMILIES` at a width of a few dozen units, so every method runs on every family in
seconds on a CPU; docs/model-families.md lists what was measured on each. A family is its
``model_type`` (what ``AutoConfig.for_model`` takes) and the few settings that keep it tiny
(head sizes, expert counts, state sizes); vocabulary and special-token ids come from the
tokenizer.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerBase


def _decoder(width: int, layers: int, **extra) -> dict:
    """Llama-style names: the most common set (Llama, Mistral, Qwen, Gemma, Phi-3, OLMo-2 ...)."""
    return dict(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=2 * width,
        **extra,
    )


def _sizes(model_type: str, width: int, layers: int) -> dict:
    head = width // 2
    if model_type == "gpt2":
        return dict(n_embd=width, n_layer=layers, n_head=2, n_inner=2 * width)
    if model_type == "bloom":
        return dict(hidden_size=width, n_layer=layers, n_head=2)
    if model_type == "opt":
        return dict(
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=2,
            ffn_dim=2 * width,
            word_embed_proj_dim=width,
        )
    if model_type in ("gpt_neox", "phi"):
        return dict(
            hidden_size=width, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * width
        )
    if model_type == "falcon":
        return dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2)
    if model_type == "mamba":
        return dict(hidden_size=width, num_hidden_layers=layers, state_size=4, expand=2)
    if model_type in ("gemma", "gemma2", "gemma3_text", "qwen3"):
        return _decoder(width, layers, head_dim=head)
    if model_type == "mixtral":
        return _decoder(width, layers, num_local_experts=4, num_experts_per_tok=2)
    if model_type == "qwen2_moe":
        return _decoder(
            width,
            layers,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=width,
            shared_expert_intermediate_size=width,
        )
    return _decoder(width, layers)


# family -> model_type. The first thirteen are the families users reported crashing or silently half-covered; then a mixture of
# experts of each layout (fused 3-D experts with and without shared linear experts) and the
# newest families transformers 5 ships.
FAMILIES: dict[str, str] = {
    "llama": "llama",
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "qwen2": "qwen2",
    "mistral": "mistral",
    "phi": "phi",
    "phi3": "phi3",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "opt": "opt",
    "falcon": "falcon",
    "bloom": "bloom",
    "mamba": "mamba",
    "mixtral": "mixtral",
    "qwen2_moe": "qwen2_moe",
    "qwen3": "qwen3",
    "gemma3": "gemma3_text",
    "olmo2": "olmo2",
}


def tiny_config(family: str, tokenizer: PreTrainedTokenizerBase, width: int = 16, layers: int = 2):
    """A random-init config of ``family`` (a key of :data:`FAMILIES`) sized for ``tokenizer``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {sorted(FAMILIES)}")
    model_type = FAMILIES[family]
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **_sizes(model_type, width, layers),
    )
    # No dropout (GPT-2 and OPT default to 0.1): a step's effect on the loss is then the update's
    # alone, which the architecture grid asserts, and memorising is quicker.
    for name, value in config.to_dict().items():
        if isinstance(value, float) and ("dropout" in name or "pdrop" in name):
            setattr(config, name, 0.0)
    return config


def tiny_model(
    family: str, tokenizer: PreTrainedTokenizerBase, width: int = 16, layers: int = 2, seed: int = 0
) -> torch.nn.Module:
    """A random-init causal LM of ``family`` (see :func:`tiny_config`), seeded."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(family, tokenizer, width, layers)).eval()
