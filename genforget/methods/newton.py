"""Influence-function (Newton) unlearning (Koh & Liang 2017, "Understanding Black-box Predictions
via Influence Functions"; Guo et al. 2020, "Certified Data Removal from Machine Learning Models",
arXiv:1911.03030).

One second-order step removes the forget set's effect on an (approximate) optimum θ of the mean
training loss over n = m + n_r examples::

    θ₋ = θ + (m / n_r) · (H_r + λI)⁻¹ ḡ_F

with ḡ_F the mean forget-example gradient and H_r the Hessian of the mean remaining (retain)
loss. At an exact optimum of a strongly convex loss this is one Newton step on the remaining
loss (``∇L_r(θ) = -(m / n_r) ḡ_F`` there), which is what Guo et al. certify; for a deep net it is
an approximation whose quality the recorded residual gradient norm ``‖∇L_r(θ₋)‖`` measures.

Hessian-vector products are exact, by double backprop (``H v = ∇(∇L · v)``), not Gauss-Newton:
the convex case then matches the retrain to solver precision, and on a non-convex net conjugate
gradients stop at the first negative-curvature direction (truncated Newton), with the damping λ
keeping the system positive definite where the curvature is small. Cost: each CG iteration is
one double-backward pass over ``newton_hessian_examples`` sampled retain examples (the
gradients use the whole retain set), so it is feasible on the trainable parameters of a small
model or a LoRA adapter (a few MB); on billions of full weights use LoRA.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from genforget.common_args import arg
from genforget.config import UnlearnConfig
from genforget.methods.base import Method
from genforget.scores import Scores

Loss = Callable[[], torch.Tensor]


def _flat(ts: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat(
        [(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(ts, params, strict=True)]
    )


def flat_grad(losses: Sequence[tuple[float, Loss]], params: list[torch.Tensor]) -> torch.Tensor:
    """``sum_w w * grad(loss())`` flattened, one ``(weight, loss)`` chunk at a time."""
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=params[0].device)
    for w, fn in losses:
        total += w * _flat(torch.autograd.grad(fn(), params, allow_unused=True), params).double()
    return total


def hvp(losses: Sequence[tuple[float, Loss]], params: list[torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """Exact Hessian-vector product of ``sum_w w * loss`` by double backprop, chunk by chunk
    (each chunk's graph is rebuilt, so memory is one chunk's)."""
    out = torch.zeros_like(v)
    for w, fn in losses:
        grads = torch.autograd.grad(fn(), params, create_graph=True, allow_unused=True)
        dot, i = 0.0, 0
        for g, p in zip(grads, params, strict=True):
            n = p.numel()
            if g is not None:
                dot = dot + (g.reshape(-1) * v[i : i + n].to(g.dtype)).sum()
            i += n
        if torch.is_tensor(dot) and dot.requires_grad:
            out += w * _flat(torch.autograd.grad(dot, params, allow_unused=True), params).double()
    return out


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int,
    tol: float,
    damping: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """Solve ``A x = b`` for symmetric ``A = H + damping·I``; stops on ``‖r‖ <= tol ‖b‖``.

    On a direction of negative curvature it stops and returns the iterate so far (truncated
    Newton, Steihaug's rule without a trust region); if that happens on the very first direction
    it steps along it with the curvature's absolute value, ``|pᵀHp| + damping·pᵀp`` (the
    saddle-free Newton step of Dauphin et al. 2014), so the update is never empty.
    """
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    info = {"cg_iterations": 0, "negative_curvature": False}
    for k in range(iters):
        if rr.sqrt() <= tol * b.norm():
            break
        ap = matvec(p)
        curv = p @ ap
        info["cg_iterations"] = k + 1
        if curv <= 0:
            info["negative_curvature"] = True
            if k == 0:
                pp = p @ p
                x = rr / ((curv - damping * pp).abs() + damping * pp).clamp(min=1e-30) * p
            break
        alpha = rr / curv
        x, r = x + alpha * p, r - alpha * ap
        rr_new = r @ r
        p, rr = r + (rr_new / rr) * p, rr_new
    info["cg_relative_residual"] = float(rr.sqrt() / b.norm().clamp(min=1e-30))
    return x, info


def newton_removal(
    params: list[torch.Tensor],
    forget_losses: Sequence[tuple[float, Loss]],
    retain_losses: Sequence[tuple[float, Loss]],
    scale: float,
    damping: float,
    cg_iters: int,
    cg_tol: float = 1e-10,
    hessian_losses: Sequence[tuple[float, Loss]] | None = None,
) -> dict:
    """In place ``θ += scale · (H_r + damping·I)⁻¹ ∇L_F``; losses are ``(weight, closure)``
    chunks whose weighted sum is the mean forget / retain loss (``hessian_losses``: a subsample
    of the retain loss for the Hessian, default all of it). Returns the solver stats and the
    remaining loss's gradient norm before and after (the certificate quantity)."""
    g_f = flat_grad(forget_losses, params)
    before = flat_grad(retain_losses, params).norm().item()
    h_losses = hessian_losses if hessian_losses is not None else retain_losses
    step, info = conjugate_gradient(
        lambda v: hvp(h_losses, params, v) + damping * v, g_f, cg_iters, cg_tol, damping
    )
    step = scale * step
    with torch.no_grad():
        i = 0
        for p in params:
            n = p.numel()
            p.add_(step[i : i + n].view_as(p).to(p.dtype))
            i += n
    after = flat_grad(retain_losses, params).norm().item()
    return {
        **info,
        "retain_grad_norm_before": before,
        "residual_grad_norm": after,
        "update_norm": step.norm().item(),
    }


@dataclass
class NewtonConfig(UnlearnConfig):
    """Newton's hyperparameters."""

    newton_damping: float = arg(0.1, "newton: damping lambda added to the retain Hessian (H + lambda I)")
    newton_cg_iters: int = arg(10, "newton: conjugate-gradient iterations")
    newton_hessian_examples: int = arg(
        32, "newton: retain examples sampled for the Hessian (0 = all; cost is linear)"
    )
    newton_n_remaining: int = arg(0, "newton: size of the remaining training set (0 = the retain set's size)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.newton_damping, self.newton_n_remaining, self.newton_hessian_examples) < 0:
            raise ValueError("newton_damping, newton_n_remaining and newton_hessian_examples must be >= 0")
        if self.newton_cg_iters < 1:
            raise ValueError(f"newton_cg_iters must be >= 1 (got {self.newton_cg_iters})")


class Newton(Method):
    """One influence/Newton step on the trainable weights; a closed-form update, not a loss to
    descend (``one_shot``): the trainer calls :meth:`apply` instead of its optimizer loop."""

    config_class = NewtonConfig

    modalities = ("lm",)
    one_shot = True

    def forget_loss(self, forget: Scores) -> torch.Tensor:
        return forget.nll.mean()  # the loss whose influence is removed

    def apply(
        self, model: torch.nn.Module, forget_feats: list[dict], retain_feats: list[dict], collate
    ) -> dict:
        """Update ``model``'s trainable parameters in place; returns a run-record entry."""
        from genforget.lm.scoring import sequence_scores

        if not retain_feats:
            raise ValueError("method 'newton' needs retain examples: its Hessian is the remaining data's")
        cfg = self.config
        t0 = time.perf_counter()
        params = [p for p in model.parameters() if p.requires_grad]
        device = params[0].device

        def chunks(feats: list[dict], size: int) -> list[tuple[float, Loss]]:
            out = []
            for i in range(0, len(feats), size):
                part = feats[i : i + size]
                batch = {k: v.to(device) for k, v in collate(part).items() if k != "idx"}
                out.append((len(part) / len(feats), lambda b=batch: sequence_scores(model, b).nll.mean()))
            return out

        forget = chunks(forget_feats, cfg.batch_size)
        retain = chunks(retain_feats, cfg.retain_batch_size)
        # A seeded subsample for the Hessian (Koh & Liang's stochastic estimate): each CG
        # iteration costs a double backward over it; the gradients use the whole retain set.
        k = cfg.newton_hessian_examples
        if k and k < len(retain_feats):
            pick = torch.randperm(len(retain_feats), generator=torch.Generator().manual_seed(cfg.seed))[:k]
            hessian = chunks([retain_feats[i] for i in sorted(pick.tolist())], cfg.retain_batch_size)
        else:
            hessian = retain
        n_remaining = cfg.newton_n_remaining or len(retain_feats)
        was_training = model.training
        model.eval()  # no dropout: the Hessian of a deterministic loss
        with torch.no_grad():
            forget_nll = sum(w * fn().item() for w, fn in forget)
        # Fused attention kernels (flash / memory-efficient, CPU and CUDA) have no double
        # backward; the composite "math" kernel is the same attention and is twice differentiable.
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.MATH]):
            stats = newton_removal(
                params,
                forget,
                retain,
                len(forget_feats) / n_remaining,
                cfg.newton_damping,
                cfg.newton_cg_iters,
                hessian_losses=hessian,
            )
        model.train(was_training)
        tokens = sum(len(f["input_ids"]) for f in forget_feats + retain_feats)
        return {
            "step": 0,
            "loss": forget_nll,
            "forget_nll": forget_nll,
            "seconds": time.perf_counter() - t0,
            "tokens": tokens,
            **stats,
        }
