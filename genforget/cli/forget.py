"""``genforget forget``: unlearn the records a deletion request names, verify, certify, log.

    genforget forget --model DIR [--data TRAIN] --request REQ.yaml [REQ2.yaml ...] --output_dir OUT
        [--key_file KEY] [--ledger PATH] [--config unlearn.yaml] [any UnlearnConfig field; request defaults: REQUEST_DEFAULTS]
        [--workers N] [--executor local|slurm|ray] [--executor_options YAML]

TRAIN: a file, a directory or a quoted glob of shards ('runs/x/*.parquet'; .jsonl, .jsonl.gz,
.jsonl.zst, .parquet, .txt), a dataset saved with save_to_disk, or an fsspec URL. ``--workers N``
scans it with N local processes through datatrove (``genforget[scale]``); ``--executor slurm``
or ``ray`` runs the same pipeline on a cluster, with the executor's own options (partition,
time, cpus_per_task, work_dir, ...) in ``--executor_options`` (see docs/corpus-scale.md).
An image takedown (image files or hashes in the request) takes a diffusers pipeline dir as
``--model`` and an image–caption dataset dir as ``--data`` (docs/image-copyright.md).
Without ``--data`` (person requests only), the forget set is built from the model's own texts
about the person and the certificate says no corpus was scanned (docs/evidence.md).

Exit 0 when every certificate passed (or nothing was located), 1 when a verification failed,
2 on a usage error (nothing written).
"""

from __future__ import annotations

import sys

from genforget.cli.args import parse_config
from genforget.config import UsageError


def forget_main(argv: list[str] | None = None) -> int:
    from genforget.diffusion.data import DiffusionConfig
    from genforget.requests.pipeline import ForgetArgs, RequestUnlearnConfig, forget_requests

    try:
        # DiffusionConfig: the sampling settings of an image takedown (ignored by text requests)
        args, cfg, dcfg = parse_config((ForgetArgs, RequestUnlearnConfig, DiffusionConfig), argv)
        result = forget_requests(args, cfg, diffusion=dcfg)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if all(c["passed"] for c in result.certificates) else 1
