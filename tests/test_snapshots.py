"""The safeguards' one snapshot store: the divergence guard and the collateral watch each fall
back to their own last good step, and a step both checks passed is held once."""

from __future__ import annotations

import types

import torch

from genforget.lm.safeguards.snapshots import COLLATERAL, GUARD, SnapshotStore


def _copies(store: SnapshotStore) -> int:
    """How many copies of the trainable weights the store holds."""
    return len(store.entries)


def test_one_copy_at_a_shared_step_and_each_bound_restores_its_own(tokenizer, monkeypatch):
    """The trainer's order, step by step: the stop checks before update k + 1, the guard after
    update k; both every 5 steps. Collateral goes past its bound at step 10 (no keep), trips at 15
    (back-off to step 5); the guard keeps 15 and trips at 20 (back to 15, optimizer state too)."""
    from genforget.lm import outcome
    from genforget.lm.safeguards.guard import DivergenceGuard
    from genforget.lm.safeguards.stopping import CalibratedStop, check_stop
    from genforget.lm.train_state import TrainState

    mod = torch.nn.Module()
    mod.a, mod.b = torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.AdamW(mod.parameters(), lr=1e-3)
    state = TrainState(mod, opt, mod)
    weight_bytes = sum(p.nbytes for p in mod.parameters())

    def update(k: int) -> None:  # "training": the weights and Adam's moments read the step count
        for p in mod.parameters():
            p.data.fill_(float(k))
            opt.state[p] = {"step": torch.tensor(float(k)), "exp_avg": torch.full_like(p, k)}

    store = SnapshotStore()
    one = [{"input_ids": [1], "labels": [1]}]
    stop = CalibratedStop(1, one, None, every=5, statistic="nll", collateral_feats=one, snapshots=store)
    stop.refresh = lambda step, model: 1e9  # unseen far above: only the collateral watch decides
    stop.latest[:] = 0.0
    stop.patience = 2
    extraction = iter([1.0, 1.0, 0.5, 0.5])  # checks at steps 0, 5, 10, 15
    monkeypatch.setattr(outcome, "measure", lambda *a, **k: outcome.Figures(next(extraction), 0.1, 1.0, 10))
    cfg = types.SimpleNamespace(max_length=32, divergence_ratio=10.0, divergence_every=5)
    guard = DivergenceGuard([{"text": "a b c"}], tokenizer, cfg, torch.device("cpu"), lambda *a: None, store)
    nll = iter([1.0, 1.0, 1.0, 1.0, 9.0])  # steps 0, 5, 10, 15, 20: perplexity x e^8 at 20, a trip
    guard.measure = lambda model: {"retain_nll": next(nll)}

    step = 0
    update(0)
    guard.start_run(mod, state)
    tripped = False
    for step in range(30):
        if step % 5 == 0:
            assert not check_stop(stop, step, None, state, opt)
            if step in (0, 5):  # both checks passed at this step: one copy, kept with the optimizer
                assert store.refs == {GUARD: step, COLLATERAL: step} and _copies(store) == 1
                (snap,) = store.entries.values()
                assert sum(w.nbytes for w in snap.weights) == weight_bytes
                assert store.nbytes() == 2 * weight_bytes + 2 * 4  # weights, exp_avg, two step scalars
            if step == 10:  # past the bound: the watch stays at 5, the guard moved on to 10
                assert store.refs == {GUARD: 10, COLLATERAL: 5} and _copies(store) == 2
            if step == 15:  # the back-off: step 5's weights, the guard's own step untouched
                assert stop.backoffs[0]["restored_step"] == 5 and mod.a.detach().eq(5.0).all()
                assert store.refs == {GUARD: 15, COLLATERAL: 5}
        update(step + 1)
        if guard.check(step + 1, mod, state):
            tripped = True
            break
    assert tripped and step + 1 == 20 and guard.events[0]["restored_step"] == 15
    assert mod.a.detach().eq(15.0).all() and mod.b.detach().eq(15.0).all()
    assert opt.state[mod.a]["step"].item() == 15.0  # the guard puts its optimizer state back too


def test_steps_no_one_names_are_freed_and_load_keeps_only_named_ones():
    from genforget.lm.safeguards.snapshots import Snapshot
    from genforget.lm.train_state import TrainState

    w = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([w], lr=1e-3)
    mod = torch.nn.Module()
    mod.w = w
    state = TrainState(mod, opt, mod)
    store = SnapshotStore()
    for k in range(4):
        w.data.fill_(float(k))
        store.keep(GUARD, k, state, optimizer=True)
    assert list(store.entries) == [3] and store.get(GUARD).weights[0].eq(3.0).all()
    store.keep(COLLATERAL, 3, state)  # already held: no second copy
    assert _copies(store) == 1
    store.load(
        [Snapshot(1, [torch.ones(2)]), Snapshot(2, [torch.ones(2)]), Snapshot(7, [torch.ones(2)])], {GUARD: 7}
    )
    assert list(store.entries) == [7] and store.step(COLLATERAL) is None


def test_a_real_run_holds_one_copy_when_both_checks_pass_at_a_step(victim, corpus, monkeypatch):
    """Through the API (guard and collateral watch on, both every 5 steps): both pass at step 0,
    where the store holds one copy of the trainable weights (bytes counted; the optimizer has no
    state yet); after every keep it holds one snapshot per distinct step its holders name."""
    import genforget
    import genforget.lm.trainer as trainer

    seen: list[tuple[dict, int, int, int]] = []

    class Recording(SnapshotStore):
        def keep(self, holder, step, state, optimizer=False):
            super().keep(holder, step, state, optimizer)
            n_weights = sum(len(s.weights) for s in self.entries.values())
            seen.append((dict(self.refs), _copies(self), n_weights, self.nbytes()))

    monkeypatch.setattr(trainer, "SnapshotStore", Recording)
    model, tok = victim
    trainable = [p for p in model.parameters() if p.requires_grad]
    genforget.unlearn(
        model,
        tok,
        corpus.unlearn_examples("forget"),
        corpus.unlearn_examples("retain"),
        method="npo",
        learning_rate=5e-4,
        max_steps=10,
        calibration_every=5,
        divergence_every=5,
    )
    both = [row for row in seen if len(row[0]) == 2]  # once the watch has kept a step too
    assert both[0][0] == {GUARD: 0, COLLATERAL: 0}
    assert both[0][1:] == (1, len(trainable), sum(p.nbytes for p in trainable))
    assert {refs[GUARD] for refs, *_ in seen} == {0, 5, 10}  # the guard went on keeping its own
    assert all(n == len(set(refs.values())) for refs, n, *_ in seen)
