"""Locate benchmark: a 10-identifier deletion request over a generated corpus of 2 M records
(~450 MB as JSONL) in 8 parquet and 8 JSONL.gz shards, with 1 and 2 datatrove workers.

    python bench/locate.py [--records 2000000] [--out runs/bench] [--quick]

The corpus is generated once into ``runs/bench/locate-<n>/`` (``jsonl/``, ``jsonl.gz/``,
``parquet/``; not committed; reused while it exists), with the request's identifiers planted in
one record of 5000 and written in other formats (phone with dots / without separators / with
+1, "Last, First M.", upper-case email, IBAN without spaces, ID without its dash). Every case
runs in a fresh process pinned to as many cores as it has workers (``taskset``) and reports
wall time, MB/s (of the corpus as JSONL) and MB/s per core, records/s, peak RSS per worker and
precision/recall against the planted records. Next to them:

- the speed floor: ``grep -c -F -i -f patterns`` (and ``rg`` when installed; the script asks
  apt for ``ripgrep`` when it can) over the same shards with the prefilter's anchors;
- the steps from the old single-process locate (exact matcher on every record, ~9 MB/s) to now;
- memory flatness: one worker over a quarter of the shards against all of them.

Writes ``locate.json``: ``{"rows": [{"format", "workers", "records", "mb", "wall_s", "mb_per_s",
"mb_per_s_per_core", "peak_rss_mb", "precision", "recall"}, ...], "floor": [...], "steps":
[...], "memory": {...}}``. Goals (issue 26): >= 100 MB/s per core, 2 workers >= 1.8x one,
peak memory <= 300 MB above the interpreter and flat in the corpus size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUEST = {
    "id": "BENCH-1",
    "identifiers": {
        "name": ["Quintessa Marblewood", "Orrin Falkenrath"],
        "email": ["q.marblewood@quillpost.example", "orrin.f@ferrule.example"],
        "phone": ["+1 (555) 013-4477", "555-019-2288"],
        "iban": ["GB82 WEST 1234 5698 7654 32"],
        "id_number": ["ZX-4471920"],
        "address": ["17 Larkspur Terrace, Dunmore"],
        "other": ["passport P-88231 stamped"],
    },
}
VARIANTS = [
    "Quintessa Marblewood", "Marblewood, Quintessa J.", "QUINTESSA MARBLEWOOD", "Orrin Falkenrath",
    "Falkenrath, Orrin", "Q.Marblewood@QuillPost.example", "orrin.f@ferrule.example", "555.013.4477",
    "+1 555 013 4477", "5550192288", "(555) 019-2288", "GB82WEST12345698765432", "ZX 4471920",
    "17 Larkspur Terrace Dunmore", "passport P-88231  stamped",
]  # fmt: skip
PLANT_EVERY = 5000
SHARDS = 8


def generate(root: Path, n: int, seed: int = 0) -> dict:
    """Write ``n`` records (~225 bytes each) as 8 shards in each format; returns the metadata
    (planted record numbers per shard, sizes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    names = [fake.name() for _ in range(3000)]
    companies = [fake.company() for _ in range(1000)]
    cities = [fake.city() for _ in range(1000)]
    streets = [fake.street_name() for _ in range(1000)]
    domains = [fake.free_email_domain() for _ in range(50)] + [fake.domain_name() for _ in range(200)]
    words = fake.words(2000)
    for d in ("jsonl", "jsonl.gz", "parquet"):
        (root / d).mkdir(parents=True, exist_ok=True)
    per = -(-n // SHARDS)
    planted: dict[str, list[int]] = {}
    for k in range(SHARDS):
        texts = []
        for i in range(k * per + 1, min(n, (k + 1) * per) + 1):
            name = rng.choice(names)
            user = name.lower().replace(" ", ".").replace("..", ".")
            phone = f"{rng.randint(200, 549)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
            filler = " ".join(rng.choices(words, k=8))
            text = (
                f"{name} works for {rng.choice(companies)} in {rng.choice(cities)} and lives on "
                f"{rng.randint(1, 999)} {rng.choice(streets)}. Call {phone} or write to "
                f"{user}@{rng.choice(domains)}. Notes: {filler}."
            )
            if i % PLANT_EVERY == 0:
                text = text.replace(name, rng.choice(VARIANTS), 1)
                planted.setdefault(f"part-{k}", []).append(len(texts) + 1)
            texts.append(text)
        body = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
        (root / "jsonl" / f"part-{k}.jsonl").write_bytes(body)
        (root / "jsonl.gz" / f"part-{k}.jsonl.gz").write_bytes(gzip.compress(body, 6))
        # Row groups of 50 k rows (datasets and datatrove write smaller ones): a reader holds one
        # row group's column, so its size, not the corpus's, sets a worker's memory.
        pq.write_table(
            pa.table({"text": texts}), root / "parquet" / f"part-{k}.parquet", row_group_size=50_000
        )
    size = {
        d: sum(f.stat().st_size for f in (root / d).iterdir()) / 1e6 for d in ("jsonl", "jsonl.gz", "parquet")
    }
    meta = {"records": n, "planted": planted, "mb_on_disk": size, "mb": size["jsonl"]}
    (root / "meta.json").write_text(json.dumps(meta))
    return meta


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def case(spec: dict) -> dict:
    """One locate run (in a fresh process, see :func:`run_case`)."""
    if spec.get("plain"):  # a plain install: no Rust automaton, no orjson
        sys.modules["ahocorasick_rs"] = None
        sys.modules["orjson"] = None
    from genforget.requests import locate, parse_request
    from genforget.requests.scale import locate_distributed

    req = parse_request(REQUEST)
    base = _status_mb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    if spec["workers"] == 0:
        res = locate([req], spec["data"], prefilter=spec.get("prefilter", True))
    else:
        res = locate_distributed([req], spec["data"], workers=spec["workers"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = [r for r in res.extra.get("task_rss_mb", []) if r and r.get("peak")]
    peak = max((r["peak"] for r in rss), default=_status_mb("VmHWM"))
    above = max((r["peak"] - r["start"] for r in rss), default=_status_mb("VmHWM") - base)
    return {"records": res.n_records, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak, "above_start_mb": above,
            "interpreter_mb": base, "located": [r.rid for r in res.located], "prefilter": res.extra.get("prefilter"),
            "kept": res.extra.get("kept"), "tasks": res.extra.get("tasks")}  # fmt: skip


def run_case(spec: dict) -> dict:
    cores = max(1, spec["workers"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "LOGURU_LEVEL": "WARNING"}
    cmd = [sys.executable, __file__, "--case", json.dumps(spec)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", ",".join(str(c) for c in range(min(cores, os.cpu_count() or 1))), *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"case {spec} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _pr(located: list[str], planted: dict[str, list[int]]) -> tuple[float, float]:
    truth = {f"{k}:{n}" for k, ns in planted.items() for n in ns}
    found = {rid.split(".", 1)[0] + ":" + rid.rsplit(":", 1)[1] for rid in located}
    hits = len(found & truth)
    return hits / max(1, len(found)), hits / max(1, len(truth))


def floors(root: Path, mb: float) -> list[dict]:
    """A plain byte scan of the same shards for the prefilter's anchors: the speed floor."""
    from genforget.requests import parse_request
    from genforget.requests.scan import Scanner

    pats = root / "patterns.txt"
    pats.write_bytes(b"\n".join(Scanner([parse_request(REQUEST)]).pf.anchors) + b"\n")
    if not shutil.which("rg") and shutil.which("apt-get") and os.geteuid() == 0:
        print("installing ripgrep from the system packages for the floor (not needed by genforget)")
        subprocess.run(["apt-get", "install", "-y", "-q", "ripgrep"], capture_output=True)
    out = []
    for tool in ("grep", "rg"):
        if not shutil.which(tool):
            print(f"{tool}: not installed, floor skipped")
            continue
        for fmt in ("jsonl", "jsonl.gz"):
            files = sorted(str(p) for p in (root / fmt).iterdir())
            scan = f"{tool} -c -F -i -f {pats}" if tool == "grep" else f"rg -c -F -i -j1 -f {pats}"
            cmd = (
                f"for f in {' '.join(files)}; do {'zcat' if fmt.endswith('gz') else 'cat'} $f | {scan}; done"
            )
            cmd = f"taskset -c 0 sh -c '{cmd}'" if shutil.which("taskset") else cmd
            subprocess.run(cmd, shell=True, capture_output=True)  # warm the page cache
            t0 = time.perf_counter()
            subprocess.run(cmd, shell=True, capture_output=True)
            wall = time.perf_counter() - t0
            out.append(
                {"tool": tool, "format": fmt, "workers": 1, "mb": mb, "wall_s": wall, "mb_per_s": mb / wall}
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--quick", action="store_true", help="skip the steps from the old locate (slowest part)")
    ap.add_argument("--case", default="")
    a = ap.parse_args()
    if a.case:
        print(json.dumps(case(json.loads(a.case))))
        return
    out = Path(a.out)
    root = out / f"locate-{a.records}"
    if not (root / "meta.json").is_file():
        t0 = time.perf_counter()
        generate(root, a.records)
        print(f"generated {a.records:,} records into {root} in {time.perf_counter() - t0:.0f}s")
    meta = json.loads((root / "meta.json").read_text())
    mb, n = meta["mb"], meta["records"]
    rows, details = [], []
    for fmt in ("parquet", "jsonl.gz"):
        for workers in (1, 2):
            r = run_case({"data": str(root / fmt), "workers": workers})
            p, rc = _pr(r["located"], meta["planted"])
            rows.append({"format": fmt, "workers": workers, "records": r["records"], "mb": round(mb, 1),
                         "wall_s": round(r["wall_s"], 2), "mb_per_s": round(mb / r["wall_s"], 1),
                         "mb_per_s_per_core": round(mb / r["wall_s"] / workers, 1),
                         "peak_rss_mb": round(r["peak_rss_mb"]), "precision": p, "recall": rc})  # fmt: skip
            details.append({k: r[k] for k in ("cpu_s", "above_start_mb", "interpreter_mb", "kept", "tasks")})
            print(f"{fmt} x{workers}: {rows[-1]['mb_per_s']} MB/s, P/R {p:.2f}/{rc:.2f}")
    steps = []
    if not a.quick:
        plain = str(root / "jsonl")
        for name, spec in (
            ("before: exact matcher on every record (prefilter off)", {"prefilter": False}),
            ("+ byte prefilter, plain install (re automaton, json)", {"plain": True}),
            ("+ ahocorasick-rs automaton and orjson (genforget[scale])", {}),
        ):
            r = run_case({"data": plain, "workers": 0, **spec})
            steps.append({"step": name, "format": "jsonl", "workers": 1, "wall_s": round(r["wall_s"], 2),
                          "mb_per_s": round(mb / r["wall_s"], 1), "located": len(r["located"])})  # fmt: skip
            print(f"{name}: {steps[-1]['mb_per_s']} MB/s")
    quarter = run_case({"data": str(root / "parquet" / "part-[01].parquet"), "workers": 1})
    full = next(
        d for d, r in zip(details, rows, strict=True) if r["format"] == "parquet" and r["workers"] == 1
    )
    memory = {"quarter_above_start_mb": round(quarter["above_start_mb"], 1),
              "full_above_start_mb": round(full["above_start_mb"], 1),
              "interpreter_mb": round(quarter["interpreter_mb"])}  # fmt: skip
    floor = floors(root, mb)
    print(f"\n{n:,} records, {mb:.0f} MB as JSONL ({meta['mb_on_disk']['parquet']:.0f} MB parquet, "
          f"{meta['mb_on_disk']['jsonl.gz']:.0f} MB JSONL.gz), 10-identifier request\n")  # fmt: skip
    print(
        "| format | workers | wall s | MB/s | MB/s per core | records/s per core | peak RSS MB / worker | above start MB | precision | recall |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r, d in zip(rows, details, strict=True):
        rps = r["records"] / r["wall_s"] / r["workers"]
        print(f"| {r['format']} | {r['workers']} | {r['wall_s']} | {r['mb_per_s']} | {r['mb_per_s_per_core']} | "
              f"{rps:,.0f} | {r['peak_rss_mb']} | {d['above_start_mb']:.0f} | {r['precision']:.2f} | {r['recall']:.2f} |")  # fmt: skip
    for fmt in ("parquet", "jsonl.gz"):
        one, two = (next(r for r in rows if r["format"] == fmt and r["workers"] == w) for w in (1, 2))
        print(f"scaling {fmt}: 2 workers = {one['wall_s'] / two['wall_s']:.2f}x one worker")
    print("\n| floor | format | MB/s (1 core) |\n| --- | --- | --- |")
    for f in floor:
        print(f"| {f['tool']} -c -F -i -f patterns | {f['format']} | {f['mb_per_s']:.0f} |")
    if steps:
        print("\n| step (plain JSONL, one process, one core) | MB/s | located |\n| --- | --- | --- |")
        for s in steps:
            print(f"| {s['step']} | {s['mb_per_s']} | {s['located']} |")
    print(f"\nmemory above the worker's start: {memory['quarter_above_start_mb']} MB over a quarter of the "
          f"shards, {memory['full_above_start_mb']} MB over all (interpreter with genforget: {memory['interpreter_mb']} MB)")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    result = {"request_identifiers": 10, "records": n, "rows": rows, "details": details, "floor": floor,
              "steps": steps, "memory": memory}  # fmt: skip
    (out / "locate.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
