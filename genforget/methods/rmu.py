"""RMU, Representation Misdirection for Unlearning (Li et al. 2024, "The WMDP Benchmark: Measuring
and Reducing Malicious Use With Unlearning", arXiv:2403.03218).

At the output of decoder layer ``l``, forget-token activations are pushed toward ``c * u`` (``u``
a fixed random unit vector: noise the later layers cannot read) while retain activations are held
at the frozen model's. Only the MLP down-projections of layers ``l-2 .. l`` train, as in the
paper's code; with LoRA only those modules get an adapter.

Scaled to this project's models (2 decoder layers, width 64-128): ``l`` defaults to the paper's
relative depth, ``round(7/32 * n_layers)`` (layer 7 of 32 in Zephyr-7B), but at least 1 and at
most the last layer (so layer 1 here: steering layer 0 could not separate the forget people from
the retain people of the tiny victim, both collapsed together); ``c``
defaults to 5x the frozen model's mean activation norm at that layer on the forget tokens (the
rule of Adaptive RMU, Dang et al. 2024, arXiv:2408.06223, since a fixed c = 6.5-20 means nothing
at another width); ``alpha`` = 100, the low end of the paper's 100-1200. It trains few weights,
so it wants a larger learning rate than the loss-based methods: on the small test victim
lr 1e-2 for 150 steps took forget-PII extraction 0.96 -> 0.08 (retain 0.97 -> 0.87), while the
shared defaults (1e-3, 60 steps) left it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.lm.arch import DOWN_PROJ as _DOWN_PROJ
from genforget.lm.arch import decoder_layers, mlp_output_projections
from genforget.methods.base import Method, PrepareContext
from genforget.scores import Scores

# What "the MLP down-projection" means in each family (genforget.lm.arch.DOWN_PROJ): down_proj,
# mlp.c_proj (GPT-2), fc2 (OPT, Phi), dense_4h_to_h (GPT-NeoX, Falcon, Bloom), an expert's w2 or
# 3-D down_proj (mixture of experts), mixer.out_proj (Mamba, which has no MLP).
DOWN_PROJ = _DOWN_PROJ
AUTO_C_SCALE = 5.0


@dataclass
class RMUConfig(UnlearnConfig):
    """RMU's hyperparameters."""

    rmu_layer: int = arg(
        -1,
        "RMU: decoder layer whose output is steered (-1: round(7/32 * n_layers), the paper's "
        "depth, at least 1)",
    )
    rmu_c: float = arg(
        0.0, "RMU: steering coefficient c (0: 5x the frozen mean activation norm at the layer)"
    )
    rmu_alpha: float = arg(100.0, "RMU: weight of the retain activation term")
    rmu_modules: list[str] = arg(
        factory=list,
        help="RMU: names (ends of module or expert-weight names inside a decoder block) of what trains "
        "in the steered layer and the two before it (empty: the MLP output projection: down_proj, "
        "mlp.c_proj, fc2, dense_4h_to_h, w2 or Mamba's mixer.out_proj)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rmu_layer < -1:
            raise ValueError(f"rmu_layer must be >= 0, or -1 for auto (got {self.rmu_layer})")
        for name in ("rmu_c", "rmu_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")


class RMU(Method):
    """``loss = mean((h_l(x_f) - c*u)^2) + alpha * mean((h_l(x_r) - h_l^frozen(x_r))^2)``

    means over target-predicting positions and hidden units, as the paper's ``mse_loss``. Config:
    ``rmu_layer`` (-1: auto), ``rmu_c`` (0: auto), ``rmu_alpha``.
    """

    config_class = RMUConfig

    modalities = ("lm",)
    needs_hidden = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.control: torch.Tensor | None = None  # c * u, set by prepare()

    def hidden_layer(self, n_layers: int) -> int:
        layer = self.config.rmu_layer
        if layer < 0:
            # At least 1: on the 2-layer victim, layer 0 could not tell forget from retain.
            layer = min(n_layers - 1, max(1, round(7 / 32 * n_layers)))
        if not 0 <= layer < n_layers:
            raise ValueError(f"rmu_layer {layer} is outside the model's {n_layers} decoder layers")
        return layer

    def trainable_modules(self, model: torch.nn.Module) -> list[str]:
        """Full names of the MLP output projections (``rmu_modules`` to name others) of the
        steered layer and the two before it: modules, or 3-D expert weights."""
        layers = decoder_layers(model, self.config.layer_pattern)
        top = self.hidden_layer(len(layers))
        wanted = tuple(self.config.rmu_modules) or DOWN_PROJ
        names = [
            f"{prefix}.{name}"
            for prefix, layer in layers[max(0, top - 2) : top + 1]
            for name in mlp_output_projections(layer, wanted)
        ]
        if not names:
            from genforget.lm.arch import describe_linear_layers

            raise ValueError(
                f"rmu: nothing named {', '.join(wanted)} in decoder layers <= {top}; set rmu_modules to "
                f"the MLP output projection's name. The model's linear layers: {describe_linear_layers(model)}"
            )
        return names

    def set_control(self, direction: torch.Tensor, c: float) -> None:
        """``c * u`` with ``u`` = ``direction`` normalised to unit length."""
        self.control = c * direction / direction.norm()

    def prepare(self, ctx: PrepareContext) -> None:
        layer = self.hidden_layer(len(decoder_layers(ctx.model, self.config.layer_pattern)))
        frozen = ctx.frozen_hidden(ctx.forget_feats, layer)
        # The paper's u: uniform [0, 1) entries, normalised; seeded so runs repeat.
        g = torch.Generator().manual_seed(self.config.seed)
        u = torch.rand(frozen.shape[-1], generator=g)
        c = self.config.rmu_c or AUTO_C_SCALE * frozen.norm(dim=-1).mean().item()
        self.set_control(u.to(frozen.device), c)
        ctx.info.update(rmu_layer=layer, rmu_c=c, rmu_alpha=self.config.rmu_alpha)

    def loss(self, forget: Scores, retain: Scores | None = None) -> torch.Tensor:
        if forget.hidden is None or self.control is None:
            raise ValueError("rmu needs forget.hidden and a control vector (run prepare / set_control)")
        loss = ((forget.hidden - self.control.to(forget.hidden)) ** 2).mean()
        if retain is not None and retain.hidden is not None and self.config.rmu_alpha > 0:
            if retain.ref_hidden is None:
                raise ValueError("rmu needs retain.ref_hidden (the frozen model's retain activations)")
            loss = loss + self.config.rmu_alpha * ((retain.hidden - retain.ref_hidden) ** 2).mean()
        return loss
