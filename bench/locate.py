"""Locate benchmark: a 10-identifier deletion request over 1 M generated records (~200 MB JSONL).

    python bench/locate.py [--records 1000000] [--out runs/bench]

Generates the corpus once into ``runs/bench/locate_<n>.jsonl`` (not committed; reused while it
exists), with the request's identifiers planted in known records and written in other formats
(phone with dots / without separators / with +1, "Last, First M.", upper-case email, IBAN
without spaces, ID without its dash). Each size runs :func:`genforget.requests.locate` in a
fresh single-threaded process and reports wall time, records/s, peak RSS (absolute, and above
the process's RSS after imports) and precision/recall against the planted records; a quarter
of the corpus is run too, to show the memory is flat in the corpus size. Writes
``locate.json``. Goal: <= 60 s for 1 M records on one core, peak memory flat (<= 300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
# Each identifier written in the formats real data has (values planted in records).
VARIANTS = [
    "Quintessa Marblewood", "Marblewood, Quintessa J.", "QUINTESSA MARBLEWOOD", "Orrin Falkenrath",
    "Falkenrath, Orrin", "Q.Marblewood@QuillPost.example", "orrin.f@ferrule.example", "555.013.4477",
    "+1 555 013 4477", "5550192288", "(555) 019-2288", "GB82WEST12345698765432", "ZX 4471920",
    "17 Larkspur Terrace Dunmore", "passport P-88231  stamped",
]  # fmt: skip
PLANT_EVERY = 5000  # one planted record in 5000: 200 in 1 M


def generate(path: Path, n: int, seed: int = 0) -> list[int]:
    """Write ``n`` JSONL records (~200 bytes each); returns the 1-based lines holding a plant."""
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
    planted = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i in range(1, n + 1):
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
                planted.append(i)
            f.write(json.dumps({"text": text}) + "\n")
    return planted


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def case(path: str) -> dict:
    """Locate the request in ``path`` (run in a fresh process by :func:`main`)."""
    from genforget.requests import locate, parse_request

    req = parse_request(REQUEST)
    base_kb = _status_kb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    res = locate([req], path, retain_size=256)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "records": res.n_records,
        "seconds": seconds,
        "cpu_seconds": cpu,  # the machine may be shared: CPU time is what one core spent
        "records_per_s": res.n_records / cpu,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
        "peak_above_imports_mb": (_status_kb("VmHWM") - base_kb) / 1024,
        "located": sorted(int(r.rid.split(":")[1]) for r in res.located),
        "counts": res.counts(0),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--case", default="")
    a = ap.parse_args()
    if a.case:
        print(json.dumps(case(a.case)))
        return
    out = Path(a.out)
    rows = []
    for n in (a.records // 4, a.records):
        path = out / f"locate_{n}.jsonl"
        meta = path.with_suffix(".planted.json")
        if not (path.is_file() and meta.is_file()):
            t0 = time.perf_counter()
            meta.write_text(json.dumps(generate(path, n)))
            print(
                f"generated {n} records ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f}s"
            )
        planted = set(json.loads(meta.read_text()))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [sys.executable, __file__, "--case", str(path)]
        if sys.platform.startswith("linux"):
            cmd = ["taskset", "-c", "0", *cmd]  # one core
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        found = set(res.pop("located"))
        res["mb"] = path.stat().st_size / 1e6
        res["precision"] = len(found & planted) / max(1, len(found))
        res["recall"] = len(found & planted) / max(1, len(planted))
        rows.append(res)
    print(
        "| records | MB | wall s | CPU s | records/CPU s | peak RSS MB | above imports MB | precision | recall |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['records']:,} | {r['mb']:.0f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['records_per_s']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['peak_above_imports_mb']:.0f} | {r['precision']:.2f} | {r['recall']:.2f} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "locate.json").write_text(json.dumps({"request_identifiers": 10, "rows": rows}, indent=2))
    print(json.dumps(rows[-1]["counts"]))


if __name__ == "__main__":
    main()
