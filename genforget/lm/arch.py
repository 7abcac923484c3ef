"""What a causal LM's architecture looks like to the methods: its decoder blocks, the linear
layers inside them (LoRA's targets) and each block's MLP output projection (RMU's weights).

Hugging Face families name these differently (``model.layers`` / ``transformer.h`` /
``gpt_neox.layers`` / ``model.decoder.layers`` / ``backbone.layers``; ``q_proj`` / ``c_attn`` /
``query_key_value`` / ``qkv_proj``; ``down_proj`` / ``c_proj`` / ``fc2`` / ``dense_4h_to_h``), so
nothing here lists names per family. The decoder blocks are found by the model's own
``_no_split_modules`` (the block classes ``accelerate`` must not split across devices), and every
``nn.Linear`` / GPT-2 ``Conv1D`` inside them, plus the 3-D expert weights of mixture-of-experts
blocks, are the LoRA targets. ``layer_pattern`` names the block list where this guesses wrong.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import torch

# Names of a block's MLP output projection across families (Llama/Mistral/Qwen/Gemma/Phi-3/OLMo
# and MoE experts: down_proj; GPT-2: mlp.c_proj; OPT/Phi: fc2; GPT-NeoX/Falcon/Bloom:
# dense_4h_to_h; older Mixtral experts: w2; Mamba, which has no MLP: the mixer's out_proj).
DOWN_PROJ = ("down_proj", "mlp.c_proj", "fc2", "dense_4h_to_h", "w2", "mixer.out_proj")
# The block list's usual attribute names, for models without ``_no_split_modules``.
LAYER_LIST_NAMES = ("layers", "h", "blocks", "block", "decoder_layers")


def _linear_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D

    return (torch.nn.Linear, Conv1D)


def _block_classes(model: torch.nn.Module) -> set[str]:
    """``_no_split_modules`` of the first ``PreTrainedModel`` inside ``model`` (through PEFT/DDP)."""
    for m in model.modules():
        names = getattr(m, "_no_split_modules", None)
        if names:
            return set(names)
    return set()


def _candidate_lists(model: torch.nn.Module) -> list[tuple[str, torch.nn.ModuleList]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m)]


def _matches(name: str, pattern: str) -> bool:
    # A pattern matches the full name or a dotted suffix of it, so "model.layers" also finds
    # "base_model.model.model.layers" under a PEFT wrapper.
    return name == pattern or name.endswith("." + pattern)


def decoder_layers(model: torch.nn.Module, pattern: str = "") -> list[tuple[str, torch.nn.Module]]:
    """``(full name, module)`` of each decoder block, in order, through any PEFT/DDP wrapper.

    ``pattern`` (``UnlearnConfig.layer_pattern``): the dotted name of the ``ModuleList`` holding
    the blocks (``model.layers``, ``transformer.h``, ...). Empty: the longest ``ModuleList`` whose
    children are the model's own block class (its ``_no_split_modules``), else the longest one
    named ``layers``/``h``/``blocks``."""
    lists = _candidate_lists(model)
    if pattern:
        found = [(n, m) for n, m in lists if _matches(n, pattern)]
        if not found:
            raise ValueError(
                f"layer_pattern {pattern!r} names no ModuleList of this model; its module lists: "
                f"{[n for n, _ in lists][:12]}; set layer_pattern to the one holding the decoder blocks"
            )
        best = max(found, key=lambda nm: len(nm[1]))
    else:
        blocks = _block_classes(model)
        typed = [(n, m) for n, m in lists if blocks and type(m[0]).__name__ in blocks]
        named = [(n, m) for n, m in lists if n.rsplit(".", 1)[-1] in LAYER_LIST_NAMES]
        pool = typed or named
        if not pool:
            raise ValueError(
                "no decoder block list found in the model (no ModuleList of its _no_split_modules "
                f"classes or named {'/'.join(LAYER_LIST_NAMES)}); its module lists: "
                f"{[n for n, _ in lists][:12]}; set layer_pattern to the one holding the decoder blocks"
            )
        best = max(pool, key=lambda nm: len(nm[1]))
    return [(f"{best[0]}.{i}", layer) for i, layer in enumerate(best[1])]


def fold_indices(name: str) -> str:
    """``name`` with every list index folded (``model.layers.3.mlp.experts.7.w1`` ->
    ``model.layers.*.mlp.experts.*.w1``): one entry per kind of layer in messages and checks."""
    return re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)", "*", name)


@dataclass
class LinearLayers:
    """The trainable linear weights inside a model's decoder blocks, by block-relative name."""

    modules: dict[str, list[str]] = field(default_factory=dict)  # relative name -> full names
    parameters: dict[str, list[str]] = field(default_factory=dict)  # 3-D expert weights

    def by_suffix(self) -> dict[str, list[str]]:
        """Relative names grouped by their last part (``q_proj`` -> ``[self_attn.q_proj]``)."""
        out: dict[str, list[str]] = defaultdict(list)
        for rel in [*self.modules, *self.parameters]:
            out[rel.rsplit(".", 1)[-1]].append(rel)
        return dict(sorted(out.items()))


def block_linear_layers(model: torch.nn.Module, pattern: str = "") -> LinearLayers:
    """Every ``nn.Linear``/``Conv1D`` inside the decoder blocks, and every 3-D weight held by a
    module that is not a convolution (fused mixture-of-experts weights, ``[experts, out, in]``)."""
    linear = _linear_types()
    out = LinearLayers()
    for prefix, block in decoder_layers(model, pattern):
        for name, mod in block.named_modules():
            if name and isinstance(mod, linear) and not _is_adapter_part(name):
                out.modules.setdefault(name, []).append(f"{prefix}.{name}")
            if isinstance(mod, torch.nn.modules.conv._ConvNd) or _is_adapter_part(name):
                continue
            for pname, p in mod.named_parameters(recurse=False):
                if p.dim() == 3:
                    rel = f"{name}.{pname}" if name else pname
                    out.parameters.setdefault(rel, []).append(f"{prefix}.{rel}")
    return out


def _is_adapter_part(name: str) -> bool:
    return any(part.startswith(("lora_", "base_layer")) for part in name.split("."))


def mlp_output_projections(
    block: torch.nn.Module, names: tuple[str, ...] | list[str] = DOWN_PROJ
) -> list[str]:
    """Block-relative names of the modules or 3-D parameters whose name ends in one of ``names``
    (RMU's trained weights: by default each MLP's, or each expert's, output projection)."""
    found = [n for n, _ in block.named_modules() if n]
    found += [n for n, p in block.named_parameters() if p.dim() == 3]
    return [n for n in found if any(n == d or n.endswith("." + d) for d in names)]


def describe_linear_layers(model: torch.nn.Module) -> str:
    """The model's linear layers grouped by last name part, for error messages (never data)."""
    linear = _linear_types()
    groups: dict[str, set[str]] = defaultdict(set)
    for name, mod in model.named_modules():
        if isinstance(mod, linear) and not _is_adapter_part(name):
            groups[name.rsplit(".", 1)[-1]].add(fold_indices(name))
    return "; ".join(f"{suffix}: {', '.join(sorted(v)[:3])}" for suffix, v in sorted(groups.items()))
