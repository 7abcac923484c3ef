"""Recheck: later fine-tunes can silently re-learn deleted people.

:func:`recheck` re-runs the extraction probes of every request the controller keeps on a new
checkpoint. Each request file is matched to its ledger entry by the HMAC of its reference under
the controller key; a request that is not in the ledger is refused (recheck certifies nothing
new). Probes are rebuilt from the training data (``--data``): the certificate holds no text to
rebuild them from, by design. :class:`RecheckCallback` runs the same check at each save of a
``transformers.Trainer`` fine-tune and warns or stops.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from genforget.config import UsageError
from genforget.requests.certificate import hmac_hex
from genforget.requests.ledger import read_ledger, verify_ledger
from genforget.requests.locate import locate
from genforget.requests.request import Request, load_requests
from genforget.requests.verify import extraction_rate, request_probes


@dataclass
class RecheckPlan:
    """The probes of each request in the ledger (kept in memory only: they hold record text)."""

    requests: list[Request]
    probes: list[list[dict]]
    names: list[str]


def prepare_recheck(
    ledger: str | Path,
    requests: str | Path | list,
    data: str | Path,
    key_file: str | Path = "",
    text_field: str = "text",
    render=None,
) -> RecheckPlan:
    """Match request files (a dir or a list of paths) to the ledger and build their probes
    (``render``: how chat records read as text; see :func:`genforget.requests.locate.locate`)."""
    ledger = Path(ledger)
    ok, msg = verify_ledger(ledger)
    if not ok:
        raise UsageError(f"--ledger {ledger}: {msg}")
    key_path = Path(key_file) if key_file else ledger.parent / "controller.key"
    if not key_path.is_file():
        raise UsageError(
            f"--key_file {key_path}: not found (the controller key the certificates were made with)"
        )
    key = key_path.read_text().strip().encode()
    if isinstance(requests, str | Path):
        d = Path(requests)
        if not d.is_dir():
            raise UsageError(f"--requests {d}: not a directory of request files")
        paths = sorted(p for p in d.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json"))
        if not paths:
            raise UsageError(f"--requests {d}: no .yaml/.yml/.json request files")
    else:
        paths = [Path(p) for p in requests]
    reqs = load_requests(paths)
    in_ledger = {e["request_hmac"]: e for e in read_ledger(ledger)}
    for r in reqs:
        if hmac_hex(key, "request:" + r.id) not in in_ledger:
            raise UsageError(
                f"{r.path}: this request is not in the ledger {ledger}; refused (recheck only rechecks)"
            )
    # kind: association: the counterfactual prompts of its located records (flip share), the
    # others their extraction probes.
    plain = [r for r in reqs if r.kind != "association"]
    res = locate(plain, data, text_field, render=render) if plain else None
    probes = []
    for r in reqs:
        if r.kind == "association":
            from genforget.requests.association_locate import locate_association
            from genforget.requests.association_pipeline import association_plan

            probes.append(association_plan(locate_association(r.association, data, text_field), 0))
        else:
            probes.append(request_probes(res, plain.index(r)))
    return RecheckPlan(reqs, probes, [Path(r.path).name for r in reqs])


def run_probes(plan: RecheckPlan, model, tokenizer, threshold: float = 0.1) -> list[dict]:
    """Greedy extraction per request on ``model``; ``flagged`` when above ``threshold``."""
    out = []
    for name, probes in zip(plan.names, plan.probes, strict=True):
        if isinstance(probes, dict):  # kind: association: the located records' flip share
            from genforget.requests.association_pipeline import measure_association

            stats = measure_association(model, tokenizer, probes, 256)["located"]
            rate, n, what = stats.get("flip_share"), len(probes["located"]), "counterfactual flip share"
        else:
            rate, n, what = extraction_rate(model, tokenizer, probes), len(probes), "extraction"
        out.append(
            {
                "request": name,
                "extraction": rate,
                "measure": what,
                "probes": n,
                "flagged": bool(rate is not None and rate > threshold),
            }
        )
    return out


def recheck(
    ledger: str | Path,
    requests: str | Path | list,
    model_dir: str | Path,
    data: str | Path,
    key_file: str | Path = "",
    threshold: float = 0.1,
    text_field: str = "text",
) -> list[dict]:
    """Re-run every request's probes on ``model_dir``; one row per request (chat records are
    read through the model's own chat template)."""
    from genforget.api import load_model
    from genforget.lm.chat import template_renderer

    plan = prepare_recheck(ledger, requests, data, key_file, text_field, template_renderer(str(model_dir)))
    try:
        model, tok = load_model(model_dir)
    except (OSError, ValueError) as e:
        raise UsageError(f"--model: {e}") from e
    return run_probes(plan, model, tok, threshold)


class RecheckCallback(TrainerCallback):
    """Runs :func:`recheck`'s probes at each save of a ``transformers.Trainer`` run.

    ``action="warn"`` warns naming the requests whose identifiers are extractable again;
    ``"stop"`` also stops training. ``history`` keeps one list of rows per save.
    """

    def __init__(
        self,
        ledger: str | Path,
        requests: str | Path | list,
        data: str | Path,
        tokenizer=None,
        key_file: str | Path = "",
        threshold: float = 0.1,
        action: str = "warn",
        text_field: str = "text",
    ) -> None:
        if action not in ("warn", "stop"):
            raise ValueError(f"action must be 'warn' or 'stop' (got {action!r})")
        self.plan = prepare_recheck(ledger, requests, data, key_file, text_field)
        self.tokenizer, self.threshold, self.action = tokenizer, threshold, action
        self.history: list[list[dict]] = []

    def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
        tok = self.tokenizer or processing_class
        was_training = model.training
        rows = run_probes(self.plan, model, tok, self.threshold)
        model.train(was_training)
        self.history.append(rows)
        flagged = [r["request"] for r in rows if r["flagged"]]
        if flagged:
            warnings.warn(
                f"step {state.global_step}: deleted data extractable again for {', '.join(flagged)}",
                stacklevel=2,
            )
            if self.action == "stop":
                control.should_training_stop = True
        return control


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        rate = "n/a" if r["extraction"] is None else f"{r['extraction']:.3f}"
        what = r.get("measure", "extraction")
        state = ("BIASED AGAIN" if what != "extraction" else "EXTRACTABLE AGAIN") if r["flagged"] else "ok"
        print(f"  {r['request']}: {what} {rate} over {r['probes']} probes: {state}", file=sys.stdout)
