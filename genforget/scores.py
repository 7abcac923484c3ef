"""Per-example scores: the one contract between models and unlearning methods.

A method never touches a model. The LM path and the diffusion path each turn a batch into
`Scores`, and every method's loss is written once against them (see shared DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Scores:
    """Per-example scores of one batch.

    Attributes:
        logp: ``[B]`` sum of target-token log-probs (LM) or ``-MSE`` (diffusion).
        nll: ``[B]`` mean target-token negative log-likelihood (LM) or the MSE (diffusion).
        ref_logp: ``[B]`` the same ``logp`` under the frozen reference model, when a method needs it.
        hidden: activations from the layer a representation method names, when it needs them.
    """

    logp: torch.Tensor
    nll: torch.Tensor
    ref_logp: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
