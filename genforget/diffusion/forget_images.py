"""``genforget forget`` for image takedowns: a diffusers pipeline, an image–caption dataset, a request.

    genforget forget --model PIPELINE_DIR --data IMAGE_DATASET_DIR --request takedown.yaml \\
        --output_dir OUT --config recipes/configs/demo_diffusion_copyright.yaml

The request (``kind: work`` with image files under ``documents`` and/or ``hashes``; ``kind:
image`` alike) is located among the training records by perceptual hash (files, ``phash:``
hashes; :mod:`genforget.diffusion.image_locate`) or by exact file SHA-256 (``sha256:``); the
located records' captions are unlearned with a diffusion method (every other caption held by the
anchor term, :func:`genforget.diffusion.takedown.unlearn_located`); the pipeline is saved to
``OUT/model``; each request's certificate (the LM certificate's format) is filed into the same
hash-chained ledger. Verification, from the same starting noise before and after:

* **extraction** (Carlini et al. 2023, :mod:`genforget.diffusion.replication`): the share of the
  located captions' generations that are copies of the located training image; after <=
  ``--extraction_bar``;
* **retained**: for up to ``--retain_eval`` other captions, the share of generations whose
  nearest training image carries their caption; after >= ``--kept_bar`` x before.

There is no retrain oracle here (a user has none): the bars are absolute, as for LM requests.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import torch

from genforget._version import __version__
from genforget.cards import sha256_text
from genforget.config import UnlearnConfig, UsageError
from genforget.diffusion.data import DiffusionConfig
from genforget.requests.options import ForgetArgs, ForgetResult, cert_paths, resolve_paths, utc_now
from genforget.requests.request import Request


def _check(args: ForgetArgs, cfg: UnlearnConfig, requests: list[Request]) -> None:
    from genforget.diffusion.pipeline import pipeline_class_name
    from genforget.methods.registry import get_method

    if not all(r.is_image for r in requests):
        raise UsageError(
            "a queue mixes image takedowns with text requests: they run on different models; "
            "run them as separate `genforget forget` calls"
        )
    if not args.model or not Path(args.model).is_dir() or pipeline_class_name(args.model) is None:
        raise UsageError(
            f"--model {args.model!r}: an image takedown needs a diffusers pipeline dir (model_index.json)"
        )
    if not args.data:
        raise UsageError("--data is required for an image takedown: the image–caption training set")
    if "diffusion" not in get_method(cfg.method).modalities:
        raise UsageError(f"--method {cfg.method} does not unlearn diffusion models; use e.g. esd or salun")
    if args.image_samples < 1 or args.retain_eval < 0 or not 0 <= args.image_max_distance < 64:
        raise UsageError("image_samples must be >= 1, retain_eval >= 0 and image_max_distance in 0..63")


def _locate(req: Request, data, max_distance: int) -> tuple[list[int], list[str]]:  # noqa: ANN001
    """The rows of ``data`` (:class:`ImageCaptionData`) that are copies of the request's images,
    and the perceptual / SHA-256 hashes that name them (for the certificate, as HMACs)."""
    from genforget.diffusion.image_locate import hamming, locate_images, phash

    hashes = [phash(x) for x in data.data.images]
    found = locate_images(req.images, data.data.images, max_distance, hashes) if req.images else []
    rows = {r for f in found for r in f.rows}
    names = [f"phash:{f.hash}" for f in found]
    for h in req.image_hashes:
        algo, hexd = h.split(":")
        if algo == "sha256":
            rows |= {i for i, s in enumerate(data.sha256) if s == hexd}
        else:
            rows |= {i for i, t in enumerate(hashes) if hamming(hexd, t) <= max_distance}
        names.append(h)
    return sorted(rows), names


def _measure(model, data, located: dict[str, int], retain: list[str], n: int, dcfg, seed: int) -> dict:  # noqa: ANN001
    """Extraction of each located caption's training image, and the 1-NN caption share of each
    retain caption, from ``n`` generations each (the same starting noise every call)."""
    from genforget.diffusion.concept_suite import generate
    from genforget.diffusion.replication import extraction, nearest_caption_share

    train, _, captions = data.data.distinct()
    gens = generate(model, list(located) + retain, n, dcfg, seed=seed)
    ext = {c: extraction(gens[c], train, t).copy_of_target for c, t in located.items()}
    kept = {c: nearest_caption_share(gens[c], train, captions, c) for c in retain}
    return {"extraction": ext, "retained": kept}


def _mean(xs) -> float:  # noqa: ANN001
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def forget_image_requests(
    args: ForgetArgs, cfg: UnlearnConfig, requests: list[Request], dcfg: DiffusionConfig | None = None
) -> ForgetResult:
    """Locate, unlearn, verify, certify every image request of the queue (one unlearned model)."""
    from genforget.diffusion.erase import save_erased
    from genforget.diffusion.image_dataset import load_image_captions
    from genforget.diffusion.pipeline import load_pipeline
    from genforget.diffusion.takedown import LocatedWorks, unlearn_located
    from genforget.requests.certificate import (
        file_certificate,
        hmac_hex,
        key_id,
        load_or_create_key,
        request_record,
        weights_sha256,
    )

    dcfg = dcfg or DiffusionConfig()
    started = utc_now()
    _check(args, cfg, requests)
    out, ledger_path, key_path = resolve_paths(args)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    try:
        model = load_pipeline(args.model)
    except (OSError, ValueError) as e:
        raise UsageError(f"--model: {e}") from e
    t0 = time.perf_counter()
    data = load_image_captions(args.data, model.image_size, args.text_field)
    located = [_locate(r, data, args.image_max_distance) for r in requests]
    timings = {"locate_s": time.perf_counter() - t0}
    n_rec = len(data.data.captions)
    for ri, (rows, _) in enumerate(located):
        print(f"[forget] request {ri + 1}/{len(requests)}: {len(rows)} training images located of {n_rec}")

    # Validation is over: from here on files are written.
    key = load_or_create_key(key_path)
    before_sha, after_sha, saved_as = weights_sha256(model.unet), None, None
    all_rows = sorted({r for rows, _ in located for r in rows})
    caps = data.data.captions
    # Each located caption is judged against its first located training image (as a distinct row).
    _, _, distinct_caps = data.data.distinct()
    seen = [img.numpy().tobytes() for img in data.data.distinct()[0]]
    target = {}
    for r in all_rows:
        target.setdefault(caps[r], seen.index(data.data.images[r].numpy().tobytes()))
    others = [c for c in dict.fromkeys(caps) if c not in target]
    retain = random.Random(cfg.seed).sample(others, min(args.retain_eval, len(others)))
    out.mkdir(parents=True, exist_ok=True)
    before = after = None
    if all_rows:
        t0 = time.perf_counter()
        before = _measure(model, data, target, retain, args.image_samples, dcfg, cfg.seed)
        timings["verify_before_s"] = time.perf_counter() - t0
        print(f"[forget] unlearning {len(target)} caption(s) ({len(all_rows)} images) with {cfg.method}")
        lw = LocatedWorks(all_rows, list(target), [])
        t0 = time.perf_counter()
        result = unlearn_located(model, lw, data.data, cfg, dcfg)
        timings["unlearn_s"] = time.perf_counter() - t0
        saved_as = save_erased(result, out / "model", args.save_mode)
        after_sha = weights_sha256(result.model.unet)
        t0 = time.perf_counter()
        after = _measure(result.model, data, target, retain, args.image_samples, dcfg, cfg.seed)
        timings["verify_after_s"] = time.perf_counter() - t0
    else:
        print("[forget] no training image located: nothing to unlearn")

    certs, paths = [], []
    for ri, (req, path) in enumerate(zip(requests, cert_paths(out, len(requests)), strict=True)):
        rows, names = located[ri]
        mine = list(dict.fromkeys(caps[r] for r in rows))
        vrows = []
        if rows and before is not None and after is not None:
            eb, ea = _mean(before["extraction"][c] for c in mine), _mean(after["extraction"][c] for c in mine)
            kb, ka = _mean(before["retained"].values()), _mean(after["retained"].values())
            n = args.image_samples
            vrows = [
                {"name": "extraction of the located images from their captions (Carlini et al. 2023)",
                 "before": eb, "after": ea, "bar": f"<= {args.extraction_bar}", "n": n * len(mine),
                 "passed": ea <= args.extraction_bar},
                {"name": "retained: other captions' generations nearest to their own training images",
                 "before": kb, "after": ka, "bar": f">= {args.kept_bar} x before", "n": n * len(retain),
                 "passed": (ka >= args.kept_bar * kb) if retain else True},
            ]  # fmt: skip
        request = request_record(key, req, {"hashes": sorted(names)}, ri + 1, len(requests))
        request["identifier_types"] = {"image": len(req.images), "hash": len(req.image_hashes)}
        request["documents_hmac"] = [hmac_hex(key, "image:" + h) for h in names]
        cert = {
            "format": "genforget-certificate/1",
            "request": request,
            "status": "unlearned" if rows else "no records located",
            "located": {
                "records": len(rows),
                "occurrences": {"image": len(rows)},
                "record_ids_hmac": sorted(hmac_hex(key, f"record:{data.sha256[r]}:{r}") for r in rows),
                "captions_sha256": [sha256_text(c) for c in mine],
            },
            "data": {
                "records_scanned": n_rec,
                "corpus_scanned": True,
                "near_dup": {"phash_max_bits": args.image_max_distance},
            },  # fmt: skip
            "sets": {"forget_records": len(all_rows), "retain_captions_anchored": len(others)},
            "model": {"before_sha256": before_sha, "after_sha256": after_sha, "saved_as": saved_as},
            "method": {"name": cfg.method, "config": dataclasses.asdict(cfg)},
            "diffusion": dataclasses.asdict(dcfg),
            "genforget_version": __version__,
            "key_id": key_id(key),
            "times": {"started_utc": started, "finished_utc": utc_now(), **timings},
            "verification": vrows,
            "relearn_speed": {
                "measured": False,
                "reason": "not run for image takedowns by `forget` "
                "(the diffusion-copyright demo runs the relearning attack)",
            },  # fmt: skip
            "passed": all(r["passed"] for r in vrows),
        }
        file_certificate(cert, path, ledger_path, ri + 1)
        certs.append(cert)
        paths.append(path)
    return ForgetResult(certs, paths, [], ledger_path, out / "model" if saved_as else None)
