"""``genforget forget`` for ``kind: association`` requests: locate -> unlearn -> verify -> certify.

The same command, certificate format and ledger as person and work requests
(:mod:`genforget.requests.pipeline`); what differs is what is located
(:mod:`genforget.requests.association_locate`) and what is verified, before and after, on the
model itself (no held-out data is needed):

- on the **located records**: the share whose decision still changes when only the attribute
  changes (counterfactual flip share), the share still given their biased decision, and the
  share now biased the *other* way (approved only as a value the data disfavoured): an
  association reversed is not an association removed;
- on a sample of **other records** (decisions that agree with the rule): the same flip share
  (the association generalises beyond the records that taught it), the agreement with the rule
  (kept) and the perplexity of the records (kept).

The calibrated stop compares the located decisions' NLL with that of the same decisions for the
same applicants of the other value(s) (``calibration_statistic: nll``, set here: the whole-text
statistic measures membership, which this kind does not remove).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from genforget.config import UnlearnConfig, UsageError
from genforget.evaluation.metrics.bias import decisions, outcome_probabilities
from genforget.requests.association import spec_json
from genforget.requests.association_locate import (
    AssociationLocateResult,
    LocatedDecision,
    locate_association,
    rewrite,
    unlearning_sets,
)


def association_plan(res: AssociationLocateResult, retain_eval: int) -> dict:
    """The prompts measured before and after (built once, so both use the same)."""
    spec = res.spec

    def rows(recs: list[LocatedDecision]) -> list[dict]:
        out = []
        for r in recs:
            prompts = {}
            for v in spec.values:
                t = rewrite(r.text, r.decision, spec, v, r.decision.outcome)
                prompts[v] = t["text"][: t["spans"][0][0]].rstrip()
            out.append(
                {
                    "prompts": prompts,
                    "value": r.decision.value,
                    "recorded": r.decision.outcome == "positive",
                    "fair": r.decision.fair(spec.rule) == "positive",
                    "text": r.text,
                }
            )
        return out

    favoured = [v for v, lean in res.leans.items() if lean == "favoured"]
    disfavoured = [v for v, lean in res.leans.items() if lean == "disfavoured"]
    # Only one side leant: the other values are its counterpart ("reversed" = they now win).
    favoured = favoured or [v for v in spec.values if v not in disfavoured]
    disfavoured = disfavoured or [v for v in spec.values if v not in favoured]
    return {
        "values": list(spec.values),
        "outcomes": (spec.positive, spec.negative),
        "favoured": favoured,
        "disfavoured": disfavoured,
        "located": rows(res.located),
        "other": rows(res.retain[:retain_eval]),
    }


def _decide(model, tok, rows: list[dict], values: list[str], outcomes) -> dict[str, list[bool]]:
    return {
        v: decisions(outcome_probabilities(model, tok, [r["prompts"][v] for r in rows], outcomes)[0])
        for v in values
    }


def _group_stats(model, tok, rows: list[dict], plan: dict) -> dict:
    if not rows:
        return {}
    values = plan["values"]
    dec = _decide(model, tok, rows, values, plan["outcomes"])
    cols = [{v: dec[v][i] for v in values} for i in range(len(rows))]
    own = [c[r["value"]] for c, r in zip(cols, rows, strict=True)]
    reversed_ = [any(c[d] and not c[f] for d in plan["disfavoured"] for f in plan["favoured"]) for c in cols]
    return {
        "flip_share": sum(len(set(c.values())) > 1 for c in cols) / len(cols),
        "reversed_share": sum(reversed_) / len(cols),
        "kept_biased": sum(
            o == r["recorded"] and r["recorded"] != r["fair"] for o, r in zip(own, rows, strict=True)
        )
        / len(rows),
        "rule_agreement": sum(o == r["fair"] for o, r in zip(own, rows, strict=True)) / len(rows),
    }


def measure_association(model, tok, plan: dict, max_length: int) -> dict:
    """Every figure of ``plan`` on ``model`` (numbers only)."""
    from genforget.requests.verify import ppl

    out = {"located": _group_stats(model, tok, plan["located"], plan)}
    out["other"] = _group_stats(model, tok, plan["other"], plan)
    out["other_ppl"] = ppl(model, tok, [r["text"] for r in plan["other"]], max_length)
    return out


def association_rows(plan: dict, before: dict, after: dict, bars: dict) -> list[dict]:
    """The certificate's before/after rows with their bars."""
    from genforget.requests.verify import _most, _ratio

    b, a, n_loc, n_oth = before, after, len(plan["located"]), len(plan["other"])
    fb = bars["flip"]
    located = [
        ("counterfactual flip share", "flip_share"),
        ("biased decision kept", "kept_biased"),
        ("reversed (favours a disfavoured value)", "reversed_share"),
    ]
    rows = [
        _most(f"{lab}, located records", b["located"][k], a["located"][k], fb, n_loc) for lab, k in located
    ]
    if n_oth:
        other = [("counterfactual flip share", "flip_share"), ("reversed", "reversed_share")]
        rows += [_most(f"{lab}, other records", b["other"][k], a["other"][k], fb, n_oth) for lab, k in other]
        rows += [
            _ratio(
                "agreement with the rule, other records",
                b["other"]["rule_agreement"],
                a["other"]["rule_agreement"],
                bars["kept"],
                n_oth,
                at_least=True,
            ),
            _ratio(
                "perplexity, other records",
                b["other_ppl"],
                a["other_ppl"],
                bars["ppl"],
                n_oth,
                at_least=False,
            ),
        ]
    for r in rows:
        r["passed"] = bool(r["passed"])
    return rows


def _association_config(cfg: UnlearnConfig) -> UnlearnConfig:
    if cfg.calibration_statistic != "nll":
        print(
            f"[forget] kind: association: calibration_statistic {cfg.calibration_statistic} -> nll (the "
            "decision's NLL against the same decision for the other value; whole-text statistics "
            "measure membership, which this kind does not remove)"
        )
        cfg = dataclasses.replace(cfg, calibration_statistic="nll")
    return cfg


def forget_associations(args, cfg: UnlearnConfig, requests: list):
    """:func:`~genforget.requests.pipeline.forget_requests` for a queue of ``kind: association``
    requests (all of them of that kind): one certificate and ledger entry per request."""

    from genforget._version import __version__
    from genforget.adapters import save_model
    from genforget.api import load_model
    from genforget.lm.trainer import unlearn_lm
    from genforget.requests import certificate as certify
    from genforget.requests.options import ForgetResult, cert_paths, resolve_paths, utc_now

    started = utc_now()
    out, ledger_path, key_path = resolve_paths(args)
    if not args.model or not args.data:
        raise UsageError("--model and --data are required (the trained model's dir and its training data)")
    if args.retain_size < 1 or args.retain_eval < 0:
        raise UsageError("retain_size must be >= 1 and retain_eval >= 0")
    if not 0 <= args.flip_bar <= 1:
        raise UsageError(f"--flip_bar must be in [0, 1] (got {args.flip_bar})")
    m = Path(args.model)
    if m.exists() and not m.is_dir():
        raise UsageError(f"--model {args.model}: not a directory (a save_pretrained or PEFT adapter dir)")
    args.set_threads()
    cfg = _association_config(cfg)
    results = [
        locate_association(r.association, args.data, args.text_field, args.retain_size, seed=cfg.seed)
        for r in requests
    ]
    try:
        model, tok = load_model(args.model)
    except (OSError, ValueError) as e:
        raise UsageError(f"--model: {e}") from e
    for ri, res in enumerate(results):
        s = res.summary()
        print(
            f"[forget] request {ri + 1}/{len(requests)} (association): {s['located']} records located of "
            f"{s['decision_records']} decisions in {s['records_scanned']} records; leans {s['leans']}"
            + (f" ({s['reason']})" if s["reason"] else "")
        )

    key = certify.load_or_create_key(key_path)
    before_sha = certify.weights_sha256(model)
    plans = [association_plan(res, args.retain_eval) for res in results]
    sets = [unlearning_sets(res) for res in results]
    forget = [ex for s in sets for ex in s["forget"]]
    retain = [ex for s in sets for ex in s["retain"]]
    calibration = [ex for s in sets for ex in s["calibration"]]
    bars = {"flip": args.flip_bar, "kept": args.kept_bar, "ppl": args.ppl_bar}
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {"locate_s": sum(r.seconds for r in results)}
    model_dir = after_sha = saved_as = None
    before = after = None
    if forget:
        t0 = time.perf_counter()
        before = [measure_association(model, tok, p, cfg.max_length) for p in plans]
        timings["verify_before_s"] = time.perf_counter() - t0
        print(
            f"[forget] unlearning {len(forget)} decisions with {cfg.method} ({len(retain)} retain examples)"
        )
        t0 = time.perf_counter()
        model = unlearn_lm(model, tok, forget, retain, cfg, calibration=calibration)
        timings["unlearn_s"] = time.perf_counter() - t0
        model_dir = out / "model"
        saved_as = save_model(model, tok, model_dir, args.save_mode)
        after_sha = certify.weights_sha256(model)
        t0 = time.perf_counter()
        after = [measure_association(model, tok, p, cfg.max_length) for p in plans]
        timings["verify_after_s"] = time.perf_counter() - t0
    else:
        print("[forget] no records located: nothing to unlearn")

    certs, paths = [], []
    for ri, (req, path) in enumerate(zip(requests, cert_paths(out, len(requests)), strict=True)):
        res = results[ri]
        located = bool(res.located)
        rows = association_rows(plans[ri], before[ri], after[ri], bars) if located and before else []
        counts = {
            f"{v}: wrongly {w}": c[f"wrongful_{k}"]
            for v, c in res.counts.items()
            for k, w in (("positive", req.association.positive), ("negative", req.association.negative))
        }
        content = {"association": spec_json(req.association)}
        cert = {
            "format": "genforget-certificate/1",
            "request": certify.request_record(key, req, content, ri + 1, len(requests)),
            # Attribute, values, outcome words and rule: no personal data, and what an auditor
            # needs to know what was removed.
            "association": req.association.describe(),
            "status": "unlearned" if located else f"no records located ({res.reason})",
            "located": {
                "records": len(res.located),
                "occurrences": counts,
                "records_by_type": {},
                "leans": res.leans,
                "record_ids_hmac": sorted(certify.hmac_hex(key, "record:" + r.rid) for r in res.located),
            },
            "data": {
                "records_scanned": res.n_records,
                "decision_records": res.n_decisions,
                "work_ngram": None,
            },
            "sets": {
                "forget_records": len(forget),
                "retain_records": len(retain),
                "twins": sum(len(req.association.values) - 1 for _ in res.located),
                "twins_trained_on": True,  # as retain: the rule's decision for the other value(s)
            },
            "model": {"before_sha256": before_sha, "after_sha256": after_sha, "saved_as": saved_as},
            "method": {"name": cfg.method, "config": dataclasses.asdict(cfg)},
            "genforget_version": __version__,
            "key_id": certify.key_id(key),
            "times": {"started_utc": started, "finished_utc": utc_now(), **timings},
            "verification": rows,
            "relearn_speed": {
                "measured": False,
                "reason": "kind: association: no relearn audit in the certificate (make demo-bias runs it "
                "against a retrained oracle)",
            },
            "passed": all(r["passed"] for r in rows),
        }
        certify.file_certificate(cert, path, ledger_path, ri + 1)
        certs.append(cert)
        paths.append(path)
    return ForgetResult(certs, paths, results, ledger_path, model_dir)
