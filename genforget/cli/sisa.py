"""``recipes/sisa.py``: train a SISA ensemble, or delete records from one exactly.

    python recipes/sisa.py --config recipes/configs/sisa_pii.yaml                  # mode: train
    python recipes/sisa.py --mode delete --output_dir runs/sisa_pii --delete pii:forget

Each deletion appends one line to ``output_dir/deletions.jsonl``: the id hashes, shards touched,
steps, seconds and ``"exact": true`` (a certificate needing no approximate audit). Ids and texts
are never printed or written.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from genforget.cli.args import parse_config
from genforget.common_args import ThreadArgs, arg
from genforget.config import UsageError
from genforget.data.pii import PIICorpusArgs
from genforget.sisa.shards import SisaConfig, corpus_records, id_hash


@dataclass
class SisaScriptArgs(ThreadArgs, PIICorpusArgs):
    """What to train on or delete, for ``recipes/sisa.py`` (the built-in corpus's fields size ``pii``)."""

    mode: str = arg("train", "train | delete")
    model_name_or_path: str = arg("", "train: the frozen base model dir")
    data: str = arg("pii", "train: JSONL of records with a unique 'id', or pii (built-in corpus)")
    delete: str = arg(
        "", "delete: JSONL of {'id'} rows, pii:forget (the corpus's forget people), or id,id,..."
    )
    output_dir: str = arg("", "train: a new dir; delete: the ensemble's dir")


def _delete_ids(args: SisaScriptArgs) -> list[str]:
    from genforget.data.loaders import load_jsonl

    if args.delete == "pii:forget":
        return [r["id"] for r in corpus_records(args.build_corpus(), ("forget",))]
    if args.delete.endswith(".jsonl"):
        rows = load_jsonl(args.delete)
        if any("id" not in r for r in rows):
            raise UsageError(f"delete: every row of {args.delete} needs an 'id'")
        return [r["id"] for r in rows]
    return [s for s in args.delete.split(",") if s]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``recipes/sisa.py``; returns the exit code (2 on a usage error)."""

    from genforget import sisa

    try:
        args, cfg = parse_config((SisaScriptArgs, SisaConfig), argv)
        if args.mode not in ("train", "delete"):
            raise UsageError(f"mode must be train or delete (got {args.mode!r})")
        if not args.output_dir:
            raise UsageError("output_dir is required: pass --output_dir runs/<name>")
        if args.mode == "train":
            from genforget.cli import check_output_dir
            from genforget.data.loaders import load_jsonl

            out = check_output_dir(args.output_dir, overwrite=False)
            if not args.model_name_or_path:
                raise UsageError("model_name_or_path is required for mode train (the frozen base)")
            records = corpus_records(args.build_corpus()) if args.data == "pii" else load_jsonl(args.data)
            if not records or any("id" not in r for r in records):
                raise UsageError(f"data {args.data!r}: every record needs a unique 'id'")
            from genforget.api import load_model

            model, tokenizer = load_model(args.model_name_or_path)
        else:
            ids = _delete_ids(args)
            if not ids:
                raise UsageError("delete is required for mode delete: pii:forget, a JSONL of ids or id,id")
            ens = sisa.load(args.output_dir)
            missing = sum(id_hash(i) not in ens.manifest for i in ids)
            if missing:
                raise UsageError(
                    f"delete: {missing} of {len(ids)} ids are not in the ensemble (already deleted?)"
                )
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.set_threads()
    if args.mode == "train":
        fields = {k: v for k, v in cfg.to_dict().items() if k not in ("n_shards", "n_slices")}
        t0 = time.perf_counter()
        ens = sisa.train(model, tokenizer, records, cfg.n_shards, cfg.n_slices, out, **fields)
        print(
            f"trained {cfg.n_shards} shard(s) x {cfg.n_slices} slice(s) on {len(records)} records "
            f"in {time.perf_counter() - t0:.1f}s -> {out}"
        )
        return 0
    stats = ens.delete(ids)
    entry = {"time": time.time(), "id_sha256": sorted({id_hash(i) for i in ids}), **stats}
    with open(ens.root / "deletions.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    print(
        f"deleted {stats['records']} records exactly: shards {stats['shards_touched']} retrained, "
        f"{stats['steps']} steps ({stats['full_retrain_steps']} for a full retrain), {stats['seconds']:.1f}s"
    )
    return 0
