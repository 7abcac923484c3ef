"""UNDO: perturb the unlearned weights with noise, then distil the unlearned model back into them.

Lee et al. 2025, "Distillation Robustifies Unlearning" (arXiv:2506.06278). An approximate
method (GA, NPO, ...) mostly *suppresses* what it was asked to forget: the weights still hold it,
and a few fine-tuning steps bring it back. UNDO moves the weights toward fresh initialisation,
``θ ← (1 − α) θ + α β N`` with ``N`` drawn from the model's own initialiser, which damages
whatever the weights stored, and then distils the unlearned model (the teacher) into them on
retain data. The teacher's outputs carry what should stay and never the forgotten data, so the
student recovers the first and not the second: its relearning curve moves toward a retrain's at a
fraction of a retrain's compute. ``α`` trades robustness for distillation steps.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from genforget.lm.data import Collator, normalise_example, tokenize_all
from genforget.loop import shuffled_batches, top_share_masks


@torch.no_grad()
def noise_like_init(
    model: torch.nn.Module,
    alpha: float,
    beta: float = 1.0,
    seed: int = 0,
    masks: dict[str, torch.Tensor] | None = None,
) -> None:
    """``θ ← (1 − α) θ + α β N`` in place for every trainable parameter, ``N`` a fresh draw of the
    model's own initialisation (``_init_weights`` through a new instance of its class), so the
    noise has each tensor's right scale (norm weights 1, projections ``initializer_range``).
    ``masks``: only the entries where a parameter's mask is True move."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"undo_alpha must be in [0, 1] (got {alpha})")
    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        fresh = type(model)(model.config)
    noise = dict(fresh.named_parameters())
    for name, p in model.named_parameters():
        if p.requires_grad and name in noise:
            moved = (1.0 - alpha) * p + alpha * beta * noise[name].to(p.device, p.dtype)
            p.copy_(moved if masks is None else torch.where(masks[name].to(p.device), moved, p))


def _grad_magnitudes(model: torch.nn.Module, feats: list[dict], collate: Collator, batch_size: int = 16):
    """``|∇ NLL|`` of ``feats``' targets per trainable parameter, summed over batches."""
    from genforget.lm.scoring import sequence_scores

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    device = next(model.parameters()).device
    for i in range(0, len(feats), batch_size):
        batch = {k: v.to(device) for k, v in collate(feats[i : i + batch_size]).items() if k != "idx"}
        loss = sequence_scores(model, batch).nll.mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                total[n] += g.abs()
    return total


def _tensor_masks(
    g_f: dict[str, torch.Tensor], g_r: dict[str, torch.Tensor], n_f: int, n_r: int, ratio: float
) -> dict[str, torch.Tensor]:
    """Whole tensors, most forget-concentrated first (summed |∇ forget| / summed |∇ retain|),
    until they hold ``ratio`` of all entries: a reset of the layers the forget gradient lands in."""
    score = {n: float(g.sum() / n_f) / (float(g_r[n].sum() / n_r) + 1e-8) for n, g in g_f.items()}
    total = sum(g.numel() for g in g_f.values())
    masks, taken = {}, 0
    for n in sorted(score, key=score.get, reverse=True):
        take = taken < ratio * total
        masks[n] = torch.full_like(g_f[n], take, dtype=torch.bool)
        taken += g_f[n].numel() if take else 0
    return masks


def saliency_masks(
    model: torch.nn.Module,
    forget: list[dict],
    retain: list[dict],
    collate: Collator,
    ratio: float,
    unit: str = "entry",
) -> dict[str, torch.Tensor]:
    """The ``ratio`` share of all trainable entries that matter most to the forget set relative
    to the retain set: ``|∇ forget NLL| / (|∇ retain NLL| + ε)`` at the unlearned weights, i.e. the
    weights a relearning attacker would move first and the retain data leans on least (SalUn's
    gradient saliency, Fan et al. 2024, arXiv:2310.12508, with SSD's retain normalisation, Foster
    et al. 2024, arXiv:2308.07707). ``unit="tensor"``: whole weight tensors instead of entries
    (:func:`_tensor_masks`)."""
    g_f = _grad_magnitudes(model, forget, collate)
    g_r = _grad_magnitudes(model, retain, collate)
    if unit == "tensor":
        return _tensor_masks(g_f, g_r, len(forget), len(retain), ratio)
    # The ratio has no unit, so one threshold over all tensors compares like with like: a
    # forgotten name's embedding row (no retain gradient at all) ranks above any shared weight.
    scores = {n: (gf / len(forget)) / (g_r[n] / len(retain) + 1e-8) for n, gf in g_f.items()}
    return dict(zip(scores, top_share_masks(list(scores.values()), ratio), strict=True))


def distill(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    features: list[dict],
    collate: Collator,
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int = 0,
    temperature: float = 1.0,
    nll_weight: float = 0.0,
) -> list[float]:
    """``steps`` AdamW steps of forward KL(teacher ‖ student) over every non-pad next-token
    position of ``features`` (shuffled epochs); returns the loss per step."""
    device = next(student.parameters()).device
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    # Cosine to 10 %: the last steps polish the retain knowledge instead of jumping around it.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=learning_rate / 10)
    batches = shuffled_batches(len(features), batch_size, torch.Generator().manual_seed(seed))
    losses = []
    teacher.eval()
    student.train()
    for _ in tqdm(range(steps), desc="undo: distil", disable=None):
        batch = {
            k: v.to(device) for k, v in collate([features[i] for i in next(batches)]).items() if k != "idx"
        }
        mask = batch["attention_mask"][:, 1:].bool()
        with torch.no_grad():
            t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            t_logp = F.log_softmax(t_logits[:, :-1][mask].float() / temperature, dim=-1)
        s_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        s_logp = F.log_softmax(s_logits[:, :-1][mask].float() / temperature, dim=-1)
        loss = F.kl_div(s_logp, t_logp, log_target=True, reduction="batchmean") * temperature**2
        if nll_weight > 0:
            # The retain texts' own next tokens: memorised retain facts come back far sooner from
            # hard labels than from a KL averaged over every (mostly template) position.
            labels = batch["input_ids"][:, 1:][mask]
            loss = loss + nll_weight * F.nll_loss(s_logp * temperature, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    student.eval()
    return losses


def undo(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    retain: list[dict],
    alpha: float,
    steps: int,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    beta: float = 1.0,
    max_length: int = 256,
    seed: int = 0,
    forget: list[dict] | None = None,
    mask_ratio: float = 1.0,
    nll_weight: float = 0.0,
    teacher: torch.nn.Module | None = None,
    mask_unit: str = "entry",
) -> tuple[torch.nn.Module, dict]:
    """UNDO on an unlearned (full-parameter) ``model``: a noised copy distilled from ``model`` on
    the whole texts of ``retain``. Returns ``(student, record)``; ``model`` is left as it was.
    ``mask_ratio`` < 1 noises only that share of each tensor, chosen by :func:`saliency_masks`
    over ``forget`` (the whole texts of the forgotten examples) and ``retain``. ``teacher``: the
    model distilled from (default ``model``, the paper's); the victim before unlearning knows the
    retained people best, and the retain texts it is queried on hold none of the forgotten."""
    if not retain:
        raise ValueError("undo needs retain data to distil on (retain_data)")
    if steps < 1:
        raise ValueError(f"undo_steps must be >= 1 when undo_alpha > 0 (got {steps})")
    feats = tokenize_all(
        [{"text": normalise_example(ex)["text"]} for ex in retain], tokenizer, max_length, "retain"
    )
    collate = Collator(tokenizer)
    masks = None
    if mask_ratio < 1:
        if not forget:
            raise ValueError("undo with mask_ratio < 1 needs the forget examples to rank weights")
        whole = [{"text": normalise_example(ex)["text"]} for ex in forget]
        masks = saliency_masks(
            model, tokenize_all(whole, tokenizer, max_length, "forget"), feats, collate, mask_ratio, mask_unit
        )
    student = copy.deepcopy(model)
    noise_like_init(student, alpha, beta, seed, masks)
    losses = distill(
        student,
        model if teacher is None else teacher.to(next(model.parameters()).device),
        feats,
        collate,
        steps,
        learning_rate,
        batch_size,
        seed,
        nll_weight=nll_weight,
    )
    return student, {
        "undo_alpha": alpha,
        "undo_steps": steps,
        "undo_teacher": "unlearned" if teacher is None else "victim",
        "undo_first_kl": losses[0],
        "undo_last_kl": losses[-1],
    }
