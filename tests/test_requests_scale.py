"""Locate at corpus scale: the datatrove pipeline returns exactly what one process returns.

A generated corpus in mixed shards (JSONL, gzip, zstd, parquet, a .txt, question/answer pairs,
blank lines, non-ASCII spellings); no record is split across a shard boundary. Distributed runs
with 1, 2 and 3 workers must give the same located records, spans, counts, retain sample and
neighbour sample as :func:`locate`, for a given seed.
"""

from __future__ import annotations

import gzip
import json
import warnings

import pytest

from genforget.data.pii import build_pii_corpus
from genforget.demos.request import demo_records
from genforget.requests import locate, parse_request

pytest.importorskip("datatrove", reason="genforget[scale] is not installed")

from genforget.requests.scale import locate_any, locate_distributed  # noqa: E402


def _summary(res, n_requests: int = 2) -> tuple:
    return (
        [(r.rid, r.text, [(h.start, h.end, h.type, h.req, h.ident) for h in r.hits]) for r in res.located],
        [res.counts(i) for i in range(n_requests)],
        res.retain,
        res.neighbours,
        res.n_records,
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """``(dir, requests, truth)``: the demo-request records of 60 people over 6 shards of 5
    formats; truth maps each request to the record ids holding its person."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    corpus = build_pii_corpus(60, 5, 0.1, n_holdout=0, seed=3)
    recs, who = demo_records(corpus)
    people = corpus.persons("forget")[:2]
    # Spellings only the decoded path sees: full-width digits and a JSON-escaped name.
    p0 = people[0]
    recs.append({"text": f"Ring {p0.pii['phone'].translate({c: c + 0xFEE0 for c in range(48, 58)})}."})
    who.append({p0.pid})
    recs.append({"text": f"Dear {p0.name.upper()}, welcome."})
    who.append({p0.pid})
    d = tmp_path_factory.mktemp("shards")
    (d / "sub").mkdir()
    parts = [recs[i::6] for i in range(6)]
    ids = [list(range(len(recs)))[i::6] for i in range(6)]
    truth: dict[int, set[str]] = {0: set(), 1: set()}

    def note(rid: str, k: int) -> None:
        for ri, p in enumerate(people):
            if p.pid in who[k]:
                truth[ri].add(rid)

    lines = lambda rs: "".join(json.dumps(r) + "\n" for r in rs)  # noqa: E731
    (d / "a.jsonl").write_text("\n" + lines(parts[0]))  # a blank first line: ids count it
    (d / "b.jsonl.gz").write_bytes(gzip.compress(lines(parts[1]).encode()))
    (d / "sub" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines(parts[2]).encode()))
    for name, part in (("d.parquet", parts[3]), ("sub/e.parquet", parts[4])):
        texts = [r.get("text") or f"{r['question']} {r['answer']}" for r in part]
        pq.write_table(pa.table({"text": texts}), d / name, row_group_size=7)
    (d / "f.jsonl").write_text(lines(parts[5]))
    for shard, (name, first) in enumerate(
        [
            ("a.jsonl", 2),
            ("b.jsonl.gz", 1),
            ("sub/c.jsonl.zst", 1),
            ("d.parquet", 1),
            ("sub/e.parquet", 1),
            ("f.jsonl", 1),
        ]  # fmt: skip
    ):
        for j, k in enumerate(ids[shard]):
            note(f"{name}:{first + j}", k)
    reqs = [
        parse_request(
            {
                "id": f"R{i}",
                "identifiers": {"name": [p.name], "email": [p.pii["email"]], "phone": [p.pii["phone"]]},
            }
        )  # fmt: skip
        for i, p in enumerate(people)
    ]
    return d, reqs, truth


def test_distributed_locate_equals_single_process(shards):
    d, reqs, truth = shards
    ref = locate(reqs, d, retain_size=32, seed=5)
    for ri in range(2):  # the reference itself is right: precision and recall 1.0
        assert {r.rid for r in ref.for_request(ri)} == truth[ri]
    assert len(ref.retain) == 32 and ref.neighbours and len(ref.located) >= 12
    for workers in (1, 2, 3):
        res = locate_distributed(reqs, d, retain_size=32, seed=5, workers=workers)
        assert res.extra["tasks"] == min(6, 4 * workers) and res.extra["workers"] == workers
        assert _summary(res) == _summary(ref), workers
    # Another split of the same shards (6 tasks on 2 workers) and another seed.
    assert _summary(locate_distributed(reqs, d, retain_size=32, seed=5, options={"tasks": 5})) == _summary(
        ref
    )
    other = locate(reqs, d, retain_size=32, seed=6)
    assert other.retain != ref.retain and other.located == ref.located
    assert _summary(locate_distributed(reqs, d, retain_size=32, seed=6, workers=2)) == _summary(other)


def test_globs_urls_and_saved_datasets(shards, tmp_path):
    from datasets import Dataset

    d, reqs, _ = shards
    ref = locate(reqs, f"{d}/**/*.parquet")
    assert {r.rid.split(":")[0] for r in ref.located} == {"d.parquet", "sub/e.parquet"}
    assert _summary(locate_distributed(reqs, f"{d}/**/*.parquet", workers=2)) == _summary(ref)
    assert _summary(locate(reqs, f"file://{d}")) == _summary(locate(reqs, d))
    texts = [json.loads(x)["text"] for x in (d / "f.jsonl").read_text().splitlines() if "text" in x]
    Dataset.from_dict({"body": texts}).save_to_disk(str(tmp_path / "ds"), num_shards=3)
    one = locate(reqs, tmp_path / "ds", text_field="body", retain_size=16)
    assert one.located and all(r.rid.startswith("train:") for r in one.located)
    assert [r.text for r in one.located] == [texts[int(r.rid.split(":")[1])] for r in one.located]
    dist = locate_distributed(reqs, tmp_path / "ds", text_field="body", retain_size=16, workers=2)
    assert dist.extra["shards"] == 3 and _summary(dist) == _summary(one)


def test_task_logs_hold_no_identifier_and_outputs_are_removed(shards, tmp_path):
    d, reqs, _ = shards
    work = tmp_path / "work"
    res = locate_distributed(reqs, d, workers=2, options={"work_dir": str(work)})
    files = [p for p in work.rglob("*") if p.is_file()]
    assert any(p.name == "executor.json" for p in files) and any("logs" in p.parts for p in files)
    assert not (work / "tasks").exists()  # the located texts went with the merge
    values = [v for r in reqs for v in r.values()] + [
        r.text[h.start : h.end] for r in res.located for h in r.hits
    ]
    for p in files:
        body = p.read_text(errors="replace")
        assert not [v for v in values if v in body], p
    assert "sealed" in (work / "logs" / "executor.json").read_text()
    # The same work_dir with another request is refused rather than mixed.
    with pytest.raises(Exception, match="holds another locate run"):
        locate_distributed(reqs[:1], d, workers=2, options={"work_dir": str(work)})


def test_idle_workers_and_bad_options_are_reported(shards, tmp_path):
    from genforget.config import UsageError

    d, reqs, _ = shards
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = locate_any(reqs, d / "sub", workers=3)
    assert res.extra["tasks"] == 2 and "1 worker(s) idle" in res.extra["note"]
    assert any("idle" in str(x.message) for x in w)
    for kw, msg in (
        ({"workers": 2, "executor": "mpi"}, "--executor must be one of"),
        ({"workers": 2, "executor_options": "[1, 2]"}, "give a YAML mapping"),
        ({"workers": 2, "executor_options": "{tasks: 2, colour: red}"}, "--executor_options: "),
        ({"executor": "slurm"}, "needs work_dir"),
        ({"workers": -1}, "--workers must be >= 0"),
    ):
        with pytest.raises(UsageError, match=msg):
            locate_any(reqs, d, **kw)


def test_ray_executor_on_a_local_ray_instance(shards, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    d, reqs, _ = shards
    ref = locate(reqs, d, retain_size=32, seed=5)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        res = locate_distributed(reqs, d, retain_size=32, seed=5, workers=2, executor="ray",
                                 options={"work_dir": str(tmp_path / "ray")})  # fmt: skip
    finally:
        ray.shutdown()
    assert res.extra["executor"] == "ray" and _summary(res) == _summary(ref)


FAKE_SBATCH = r"""#!/bin/bash
# A stand-in for Slurm's sbatch: runs every index of the array job here, one after another.
script="${@: -1}"
export RUN_OFFSET=0 SLURM_NODELIST=localhost SLURM_NODEID=0
range=$(grep -oP '^#SBATCH --array=\K[0-9-]+' "$script")
if [ -n "$range" ]; then
  for i in $(seq ${range%-*} ${range#*-}); do
    SLURM_ARRAY_TASK_ID=$i bash "$script" > /dev/null 2>&1 || exit 1
  done
fi
echo "Submitted batch job 4242"
"""


def test_slurm_executor_through_a_stand_in_sbatch(shards, tmp_path, monkeypatch):
    """The Slurm path end to end (sbatch script, executor pickled to the work dir, tasks started
    by ``launch_pickled_pipeline`` in fresh processes, the driver waiting for completions, the
    merge) with a stand-in ``sbatch`` that runs the array here; no cluster is contacted."""
    import os
    import stat
    import sys

    d, reqs, _ = shards
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "scontrol").write_text('#!/bin/bash\necho "${@: -1}"\n')  # show hostnames X -> X
    for tool in ("sbatch", "scontrol"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    ref = locate(reqs, d / "sub", retain_size=32, seed=5)
    work = tmp_path / "shared"
    opts = {"work_dir": str(work), "partition": "cpu", "time": "00:10:00", "with_srun": False, "poll_s": 0.1,
            "wait_s": 60, "keep_work_dir": True}  # fmt: skip
    res = locate_distributed(reqs, d / "sub", retain_size=32, seed=5, executor="slurm", options=opts)
    assert res.extra["executor"] == "slurm" and res.extra["tasks"] == 2 and _summary(res) == _summary(ref)
    script = (work / "logs" / "launch_script.slurm").read_text()
    assert "#SBATCH --array=0-1" in script and "launch_pickled_pipeline" in script
    assert not (work / "logs" / "executor.pik").exists()  # the pickled request queue is gone
