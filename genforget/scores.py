"""Per-example scores: the one contract between models and unlearning methods.

A method never touches a model. The LM path and the diffusion path each turn a batch into
`Scores`, and every method's loss is written once against them (see docs/adding-a-method.md).
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
        hidden: ``[N, D]`` activations at the positions predicting target tokens, at the layer a
            representation method names (``Method.needs_hidden``), rows of all examples stacked.
        ref_hidden: ``[N, D]`` the same activations under the frozen model (RMU's retain term).
        token_logp: ``[B, T]`` per-token target log-probs (0 off target), LM path only: for
            token-weighted losses (WGA).
        token_mask: ``[B, T]`` bool, the target tokens of ``token_logp``.
        chosen: the scores of the *preferred* answer paired with each example (DPO-style methods,
            ``Method.needs_chosen``), with its own ``ref_logp``; ``logp`` here is the rejected one.
    """

    logp: torch.Tensor
    nll: torch.Tensor
    ref_logp: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    ref_hidden: torch.Tensor | None = None
    token_logp: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    chosen: Scores | None = None
