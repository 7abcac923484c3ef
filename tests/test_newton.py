"""Influence/Newton unlearning: the solver against linear algebra, the removal against an exact
retrain on a strongly convex problem, and the trainer hook on a tiny LM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genforget.config import UnlearnConfig
from genforget.lm.data import Collator, tokenize_example
from genforget.lm.scoring import sequence_scores
from genforget.lm.trainer import unlearn_lm
from genforget.methods.newton import conjugate_gradient, hvp, newton_removal

MU = 5e-2  # L2 strength: makes the logistic loss strongly convex


def test_hvp_and_cg_match_linear_algebra():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    quad = [(1.0, lambda: 0.5 * x @ a @ x)]  # Hessian = a
    v = torch.randn(6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(hvp(quad, [x], v), a @ v)
    sol, info = conjugate_gradient(lambda u: a @ u, b, iters=20, tol=1e-12)
    torch.testing.assert_close(sol, torch.linalg.solve(a, b))
    assert info["cg_iterations"] <= 6 and not info["negative_curvature"]
    _, info = conjugate_gradient(lambda u: -u, b, iters=5, tol=1e-12)  # negative definite: stops
    assert info["negative_curvature"]


def _logreg(n: int = 300, d: int = 8):
    g = torch.Generator().manual_seed(1)
    x = torch.cat(
        [torch.randn(n, d, generator=g, dtype=torch.float64), torch.ones(n, 1, dtype=torch.float64)], 1
    )
    w_true = torch.randn(d + 1, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w_true)).double()
    return x, y


def _loss(w, x, y):
    return F.binary_cross_entropy_with_logits(x @ w, y) + MU / 2 * w @ w


def _fit(x, y, w0):
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w], lr=1, max_iter=500, tolerance_grad=1e-13, tolerance_change=0, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = _loss(w, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def test_newton_removal_matches_retrain_on_convex_logistic_regression():
    x, y = _logreg()
    forget = torch.arange(15)  # 5 % of the data
    keep = torch.arange(15, len(y))
    w_full = _fit(x, y, torch.zeros(x.shape[1], dtype=torch.float64))
    w_retrain = _fit(x[keep], y[keep], w_full)
    moved = (w_retrain - w_full).norm()

    w = w_full.clone().requires_grad_(True)
    stats = newton_removal(
        [w],
        [(1.0, lambda: _loss(w, x[forget], y[forget]))],
        [(1.0, lambda: _loss(w, x[keep], y[keep]))],
        scale=len(forget) / len(keep),
        damping=0.0,
        cg_iters=50,
    )
    newton_err = ((w.detach() - w_retrain).norm() / moved).item()

    # Gradient ascent on the forget loss, with the best step size and step count in hindsight.
    ga_err = float("inf")
    for lr in (0.01, 0.03, 0.1, 0.3, 1.0):
        for steps in (1, 3, 10, 30):
            v = w_full.clone().requires_grad_(True)
            for _ in range(steps):
                (grad,) = torch.autograd.grad(_loss(v, x[forget], y[forget]), [v])
                v = (v + lr * grad).detach().requires_grad_(True)
            ga_err = min(ga_err, ((v.detach() - w_retrain).norm() / moved).item())

    assert newton_err < 0.03, f"Newton is {newton_err:.3f} of the retrain's move away"
    assert newton_err < ga_err / 10, f"Newton {newton_err:.4f} vs best gradient ascent {ga_err:.4f}"
    assert stats["residual_grad_norm"] < 0.05 * stats["retain_grad_norm_before"]


def test_newton_through_the_trainer_records_the_certificate(tiny_lm, tokenizer):
    forget = [{"text": "Alice's phone number is 555-0100."}, {"text": "Bob lives at 1 Main Street."}]
    retain = [{"text": "Carol works for Acme."}, {"text": "Dan was born on 1 May 1990."}]
    collate = Collator(tokenizer.pad_token_id)
    batch = collate([tokenize_example(ex, tokenizer) for ex in forget])

    def forget_nll() -> float:
        with torch.no_grad():
            return sequence_scores(tiny_lm.eval(), batch).nll.mean().item()

    before = forget_nll()
    history: list[dict] = []
    cfg = UnlearnConfig(method="newton", newton_damping=0.1, newton_cg_iters=5)
    unlearn_lm(tiny_lm, tokenizer, forget, retain, cfg, history=history)
    (rec,) = history
    print({k: v for k, v in rec.items() if k != "seconds"})
    assert forget_nll() > before + 1e-3, "removing the forget set's influence must make it less likely"
    assert rec["forget_nll"] == pytest.approx(before, rel=1e-5)
    assert rec["cg_iterations"] >= 1 and rec["update_norm"] > 0
    assert rec["residual_grad_norm"] >= 0 and rec["retain_grad_norm_before"] > 0
    with pytest.raises(ValueError, match="needs retain examples"):
        unlearn_lm(tiny_lm, tokenizer, forget, None, cfg)
