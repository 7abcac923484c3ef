"""``forget_requests``: request files → located records → sets → unlearning → verification →
certificate → ledger. ``genforget forget`` is this function behind a command line.

Nothing is written until every input is validated and the data has been read (a bad request,
data file or option raises :class:`~genforget.config.UsageError` with nothing on disk).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from genforget.config import UnlearnConfig, UsageError
from genforget.diffusion.data import DiffusionConfig
from genforget.requests.certificate import (
    file_certificate,
    hmac_hex,
    key_id,
    load_or_create_key,
    removal_evidence,
    request_record,
    weights_sha256,
)
from genforget.requests.options import (
    ForgetArgs,
    ForgetResult,
    RequestUnlearnConfig,
    cert_paths,
    resolve_paths,
    utc_now,
)
from genforget.requests.records import windows
from genforget.requests.relearn import check_budgets, relearn_row, relearn_speed
from genforget.requests.request import Request, load_requests
from genforget.requests.scale import locate_any
from genforget.requests.twins import make_twins
from genforget.requests.verify import figures, measure, verification_plan


def forget_requests(
    args: ForgetArgs,
    cfg: UnlearnConfig | None = None,
    requests: list[Request] | None = None,
    diffusion: DiffusionConfig | None = None,
) -> ForgetResult:
    """Run the whole request pipeline (see the module docstring); returns the certificates.
    Image takedowns go to :func:`genforget.diffusion.forget_images.forget_image_requests`
    (``diffusion``: its sampling settings)."""

    from genforget.adapters import save_model
    from genforget.api import load_model
    from genforget.lm.chat import load_chat_template, template_renderer
    from genforget.lm.specials import tokenization_record
    from genforget.lm.trainer import unlearn_lm

    cfg = cfg or RequestUnlearnConfig()
    started = utc_now()
    requests = requests if requests is not None else load_requests(args.request)
    kinds = {r.kind for r in requests}
    if "association" in kinds:
        if kinds != {"association"}:
            raise UsageError(
                "a queue mixes kind: association with person/work requests: they locate and verify "
                "different things; run them as separate `genforget forget` calls"
            )
        from genforget.requests.association_pipeline import forget_associations

        return forget_associations(args, cfg, requests)
    if any(r.is_image for r in requests):
        from genforget.diffusion.forget_images import forget_image_requests

        return forget_image_requests(args, cfg, requests, diffusion)
    out, ledger_path, key_path = resolve_paths(args)
    if not args.model:
        raise UsageError("--model is required (the trained model's save_pretrained dir)")
    if args.retain_size < 1 or args.retain_eval < 0 or args.work_ngram < 2 or not 0 <= args.near_dup <= 1:
        raise UsageError("retain_size must be >= 1, retain_eval >= 0, work_ngram >= 2 and near_dup in [0, 1]")
    try:  # the command line gives list fields as strings
        budgets = [int(b) for b in args.relearn_budgets]
        check_budgets(budgets)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--relearn_budgets: {e}; e.g. --relearn_budgets 0 5 10 20 40") from e
    if not 0 <= args.relearn_bar <= 1:
        raise UsageError(f"--relearn_bar must be in [0, 1] (got {args.relearn_bar})")
    m = Path(args.model)
    if (m.exists() and not m.is_dir()) or (
        not m.exists() and (args.model.startswith((".", "/")) or args.model.count("/") > 1)
    ):
        raise UsageError(f"--model {args.model}: not a directory (a save_pretrained or PEFT adapter dir)")
    args.set_threads()
    # The data is read before the model is loaded: a bad record is reported without waiting for it.
    try:
        render = template_renderer(args.model, args.chat_template)
    except FileNotFoundError as e:
        raise UsageError(f"--chat_template: {e}") from e
    if not args.data and any(r.kind != "person" for r in requests):  # zero-shot: a person only
        raise UsageError("--data is required for kind: work (the taken-down text's training copies)")
    res = args.data and locate_any(
        requests, args.data, args.workers, args.executor, args.executor_options, text_field=args.text_field,
        retain_size=args.retain_size, seed=cfg.seed, work_ngram=args.work_ngram, near_dup=args.near_dup,
        render=render,
    )  # fmt: skip
    try:
        model, tok = load_model(args.model)
    except (OSError, ValueError) as e:
        raise UsageError(f"--model: {e}") from e
    if not res:  # no corpus: RWKU's zero-shot setting (genforget.requests.zeroshot)
        from genforget.requests.zeroshot import locate_from_model

        res = locate_from_model(requests, model, tok, args.retain_size, cfg.seed, args.zero_shot_samples)
    if args.chat_template:  # saved with the unlearned model: chats read the same way later
        tok.chat_template = load_chat_template(args.chat_template)
    for ri in range(len(requests)):
        c = res.counts(ri)
        occ = ", ".join(f"{k} {v}" for k, v in c["occurrences"].items()) or "none"
        print(
            f"[forget] request {ri + 1}/{len(requests)}: {c['records']} records located; occurrences: {occ}"
        )
    how = {k: res.extra[k] for k in ("executor", "workers", "tasks", "prefilter") if k in res.extra}
    if "zero_shot" in res.extra:
        print(
            f"[forget] no corpus scanned: forget and retain sets from the model's own texts ({res.extra['zero_shot']})"
        )
    else:
        print(f"[forget] scanned {res.n_records} records in {res.seconds:.1f}s ({how})")
    if res.extra.get("note"):
        print(f"[forget] warning: {res.extra['note']}")

    # Validation is over: from here on files are written.
    key = load_or_create_key(key_path)
    before_sha = weights_sha256(model)
    twins = make_twins(res, seed=cfg.seed)
    twins_by_rid = {r.rid: t for r, t in zip(res.located, twins, strict=True)}
    retain_texts = [t for _, t in res.retain]
    plan = verification_plan(
        res, twins_by_rid, retain_texts[: args.retain_eval], cfg.seed, tok, args.adversarial
    )
    bars = {
        "extraction": args.extraction_bar,
        "sampled": args.sampled_bar,
        "auc": args.auc_bar,
        "member_ratio": args.member_ratio_bar,
        "kept": args.kept_bar,
        "ppl": args.ppl_bar,
    }
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {"locate_s": res.seconds}
    model_dir, after_sha, saved_as = None, None, None
    before = after = None
    outcome: dict = {}  # the unlearning run's own outcome (genforget.lm.outcome): numbers only
    relearn: list[dict | None] = [None] * len(requests)
    if res.located:
        t0 = time.perf_counter()
        before = measure(model, tok, plan, cfg.max_length, args.samples, cfg.seed)
        timings["verify_before_s"] = time.perf_counter() - t0
        forget = [w for r in res.located for w in windows({"text": r.text, "spans": r.spans()})]
        retain = [{"text": t} for t in retain_texts]
        print(
            f"[forget] unlearning {len(res.located)} records ({len(forget)} examples) with {cfg.method} "
            f"({len(retain)} retain records)"
        )
        t0 = time.perf_counter()
        calibration = [w for t in twins for w in windows(t)]
        model = unlearn_lm(model, tok, forget, retain, cfg, calibration=calibration, outcome=outcome)
        timings["unlearn_s"] = time.perf_counter() - t0
        model_dir = out / "model"
        saved_as = save_model(model, tok, model_dir, args.save_mode)
        after_sha = weights_sha256(model)
        t0 = time.perf_counter()
        after = measure(model, tok, plan, cfg.max_length, args.samples, cfg.seed)
        timings["verify_after_s"] = time.perf_counter() - t0
        if args.relearn_speed:
            t0 = time.perf_counter()
            relearn = [
                relearn_speed(model, tok, res, ri, windows, budgets, seed=cfg.seed)
                if res.for_request(ri)
                else None
                for ri in range(len(requests))
            ]
            timings["relearn_speed_s"] = time.perf_counter() - t0
            for ri, sp in enumerate(relearn):
                if sp and sp["measured"]:
                    c = sp["curves"]
                    print(
                        f"[forget] request {ri + 1}: relearn speed over {sp['budgets']} steps: located "
                        f"{[round(v, 2) for v in c['located']]}, twins {[round(v, 2) for v in c['twins']]}, "
                        f"largest gap {sp['max_gap']:.2f}"
                    )
    else:
        print("[forget] no records located: nothing to unlearn")

    from genforget._version import __version__
    from genforget.data.loaders import fingerprint

    certs, paths, card_certs = [], [], []
    for ri, (req, path) in enumerate(zip(requests, cert_paths(out, len(requests)), strict=True)):
        counts = res.counts(ri)
        located = counts["records"] > 0
        rows = figures(plan, before, after, ri, args.samples, bars) if located else []
        speed = relearn[ri]
        if speed is None:
            why = "no records located" if args.relearn_speed else "off (--relearn_speed false)"
            speed = {"measured": False, "reason": why}
        elif speed["measured"]:
            rows.append(relearn_row(speed, args.relearn_bar, args.relearn_gate))
        cert = {
            "format": "genforget-certificate/1",
            "request": request_record(key, req, {"identifiers": req.identifiers}, ri + 1, len(requests)),
            "status": "unlearned" if located else "no records located",
            "located": {
                "records": counts["records"],
                "occurrences": counts["occurrences"],
                "records_by_type": counts["records_by_type"],
                "record_ids_hmac": sorted(hmac_hex(key, "record:" + r.rid) for r in res.for_request(ri)),
            },
            "data": {
                "records_scanned": res.n_records,
                "corpus_scanned": "zero_shot" not in res.extra,
                "zero_shot": res.extra.get("zero_shot"),
                "work_ngram": res.work_ngram if req.documents else None,
                "near_dup": args.near_dup if req.documents else None,
                "locate": {
                    k: res.extra[k] for k in ("executor", "workers", "tasks", "shards") if k in res.extra
                },
            },
            "sets": {
                "forget_records": len(res.located),
                "retain_records": len(res.retain),
                "twins": len(twins),
                "twins_trained_on": False,
            },
            "model": {"before_sha256": before_sha, "after_sha256": after_sha, "saved_as": saved_as},
            "tokenization": tokenization_record(tok),
            "method": {"name": cfg.method, "config": dataclasses.asdict(cfg)},
            # The run's outcome on all located records together (forgotten | partial | unchanged).
            "unlearning_outcome": {k: v for k, v in outcome.items() if k != "lora_targets"} or None,
            "genforget_version": __version__,
            "key_id": key_id(key),
            "times": {"started_utc": started, "finished_utc": utc_now(), **timings},
            "verification": rows,
            "relearn_speed": speed,
            "evidence": removal_evidence(rows, speed),
            # A row marked "gating": False is shown but does not decide (the relearn row by default).
            "passed": all(r["passed"] for r in rows if r.get("gating", True)),
        }
        entry = file_certificate(cert, path, ledger_path, ri + 1)
        certs.append(cert)
        paths.append(path)
        card_certs.append({"id": cert["request"]["ref_hmac"], "sha256": entry["certificate_sha256"]})
    if model_dir is not None:
        from genforget.lm.model_card import write_lm_card

        # After the certificates: the card names each by its request's HMAC and its file's SHA-256.
        write_lm_card(
            model_dir,
            model,
            config=dataclasses.asdict(cfg),
            data={
                "forget_examples": len(forget),
                "forget_sha256": fingerprint(forget),
                "retain_examples": len(retain),
                "retain_sha256": fingerprint(retain) if retain else None,
            },
            outcome={k: v for k, v in outcome.items() if k != "lora_targets"} or None,
            certificate=card_certs,
            verification=[r for c in certs for r in c["verification"]],
            adapter=saved_as == "adapter",
        )
    return ForgetResult(certs, paths, res, ledger_path, model_dir)
