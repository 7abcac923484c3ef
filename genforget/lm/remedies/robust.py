"""Forgetting that holds: extra forget passes that make a method's result robust to attacks.

An approximate method can reach a low forget loss at a point of weight space where a small move
brings the data back: a few fine-tuning steps (relearning) or rounding onto a 4-bit grid. Both
remedies here add a second forget pass at a moved copy of the weights, so the optimizer is paid
for forgetting that survives the move (the retain term stays at the weights themselves):

- ``sam_rho`` — sharpness-aware unlearning (Fan et al. 2025, "Towards LLM Unlearning Resilient to
  Relearning Attacks: A Sharpness-Aware Minimization Perspective and Beyond", arXiv:2502.05374):
  the forget loss is taken at ``θ + ρ g/‖g‖``, the worst nearby point (``g`` the forget
  gradient), i.e. SAM on the forget term only.
- ``quant_aware_weight`` — the forget loss is also taken through NF4 rounding of every linear
  layer the 4-bit audit quantises (straight-through gradients), in the spirit of Zhang et al.
  2024's remedy for "Does your LLM truly unlearn? An embarrassingly simple approach to recover
  unlearned knowledge" (arXiv:2410.16454): the forget set must stay forgotten on the grid a
  4-bit deployment puts the weights on.
- ``relearn_aware_steps`` — a relearn-aware forget loss in the spirit of meta-unlearning (Tamirisa
  et al. 2024, "Tamper-Resistant Safeguards for Open-Weight LLMs", arXiv:2408.00761; Gao et al.
  2024, "Meta-Unlearning on Diffusion Models", arXiv:2410.12777): an attacker is simulated for
  ``k`` fine-tuning steps on the forget batch (sign-of-gradient descent on its NLL, the shape of
  Adam's first steps, at ``relearn_aware_lr``) and the method's forget loss is taken where the
  attacker ends; its gradient there is added to the step's (first-order, as first-order MAML),
  so the optimizer is paid for forgetting that survives ``k`` steps of relearning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch.nn.utils import parametrize


def sam_backward(
    backward: Callable[[torch.Tensor], None],
    loss: torch.Tensor,
    forget_only: torch.Tensor,
    params: list[torch.nn.Parameter],
    rho: float,
    forget_loss_at: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """Gradients of ``(loss − forget_only)`` at ``θ`` plus the forget loss at ``θ + ρ g/‖g‖``.

    ``loss`` and ``forget_only`` come from one forward at ``θ``; ``forget_loss_at()`` runs a new
    forget forward (at whatever the weights are when it is called). Returns the perturbed forget
    loss. The retain part is back-propagated before the weights move, since autograd refuses a
    graph whose saved weights were changed in place.
    """
    grads = torch.autograd.grad(forget_only, params, retain_graph=True, allow_unused=True)
    backward(loss - forget_only)
    norm = torch.nn.utils.get_total_norm([g for g in grads if g is not None])
    scale = rho / (float(norm) + 1e-12)
    eps = [None if g is None else g * scale for g in grads]
    with torch.no_grad():
        for p, e in zip(params, eps, strict=True):
            if e is not None:
                p.add_(e)
    try:
        perturbed = forget_loss_at()
        backward(perturbed)
    finally:
        with torch.no_grad():
            for p, e in zip(params, eps, strict=True):
                if e is not None:
                    p.sub_(e)
    return perturbed.detach()


class _FakeNF4(torch.nn.Module):
    """``w`` rounded onto the blockwise NF4 grid bitsandbytes deploys (straight-through gradient)."""

    def __init__(self, blocksize: int = 64) -> None:
        super().__init__()
        self.blocksize = blocksize

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        import bitsandbytes.functional as bnbf

        with torch.no_grad():
            q, state = bnbf.quantize_4bit(w.detach().contiguous(), blocksize=self.blocksize, quant_type="nf4")
            wq = bnbf.dequantize_4bit(q, state).to(w.dtype).view_as(w)
        return w + (wq - w).detach()


def quantised_linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The linear layers a 4-bit load quantises: all but the output head (transformers keeps the
    head, tied to the embeddings, in full precision) and LoRA's own factors (QLoRA trains those
    in full precision over the 4-bit base)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head and "lora_" not in name
    ]


@contextlib.contextmanager
def fake_nf4(model: torch.nn.Module, blocksize: int = 64) -> Iterator[None]:
    """Inside, every quantised linear layer of ``model`` computes with its NF4-rounded weight."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ImportError("quant_aware_weight needs bitsandbytes: pip install genforget[quant]") from e
    layers = quantised_linears(model)
    for m in layers:
        parametrize.register_parametrization(m, "weight", _FakeNF4(blocksize), unsafe=True)
    try:
        yield
    finally:
        for m in layers:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)


def relearn_aware_backward(
    backward: Callable[[torch.Tensor], None],
    params: list[torch.nn.Parameter],
    steps: int,
    lr: float,
    weight: float,
    forget_nll: Callable[[], torch.Tensor],
    forget_loss_at: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """Adds ``weight`` × the gradient of the forget loss after ``steps`` simulated relearning
    steps (``θ ← θ − lr · sign ∇ forget NLL``) to the parameters' ``.grad``; the weights are put
    back exactly. Returns the forget loss at the attacker's end point."""
    moves = [torch.zeros_like(p) for p in params]
    try:
        for _ in range(steps):
            grads = torch.autograd.grad(forget_nll(), params, allow_unused=True)
            with torch.no_grad():
                for p, m, g in zip(params, moves, grads, strict=True):
                    if g is not None:
                        d = -lr * g.sign()
                        p.add_(d)
                        m.add_(d)
        attacked = forget_loss_at()
        backward(weight * attacked)
    finally:
        with torch.no_grad():
            for p, m in zip(params, moves, strict=True):
                p.sub_(m)
    return attacked.detach()


class RobustStep:
    """The backward of one training step with the configured remedies (``None`` when none is)."""

    def __init__(
        self,
        params: list,
        model: torch.nn.Module,
        sam_rho: float,
        quant_aware_weight: float,
        relearn_aware: tuple[int, float, float] = (0, 0.0, 0.0),
    ) -> None:
        self.params, self.model = params, model
        self.sam_rho, self.quant_aware_weight = sam_rho, quant_aware_weight
        self.relearn_steps, self.relearn_lr, self.relearn_weight = relearn_aware

    @classmethod
    def from_config(cls, config, params: list, model: torch.nn.Module) -> RobustStep | None:
        relearn = (config.relearn_aware_steps, config.relearn_aware_lr, config.relearn_aware_weight)
        if config.sam_rho <= 0 and config.quant_aware_weight <= 0 and relearn[0] <= 0:
            return None
        return cls(params, model, config.sam_rho, config.quant_aware_weight, relearn)

    def backward(
        self,
        backward: Callable[[torch.Tensor], None],
        loss: torch.Tensor,
        forget_loss: Callable[[bool], torch.Tensor],
        forget_nll: Callable[[], torch.Tensor] | None = None,
    ) -> None:
        """``loss`` (forget + retain, at ``θ``) back-propagated with its forget term replaced by the
        SAM version, plus ``quant_aware_weight`` × the forget loss through NF4 rounding.
        ``forget_loss(False)``: the forget term of ``loss``'s own forward; ``forget_loss(True)``: a
        new forget forward at the weights as they are when called; ``forget_nll()``: the forget
        batch's mean NLL at the weights as they are (the simulated attacker's loss)."""
        if self.sam_rho > 0:
            sam_backward(
                backward, loss, forget_loss(False), self.params, self.sam_rho, lambda: forget_loss(True)
            )
        else:
            backward(loss)
        if self.quant_aware_weight > 0:
            with fake_nf4(self.model):
                backward(self.quant_aware_weight * forget_loss(True))
        if self.relearn_steps > 0:
            if forget_nll is None:
                raise ValueError("relearn_aware_steps needs the forget batch's NLL (forget_nll)")
            relearn_aware_backward(
                backward,
                self.params,
                self.relearn_steps,
                self.relearn_lr,
                self.relearn_weight,
                forget_nll,
                lambda: forget_loss(True),
            )
