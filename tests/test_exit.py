"""One of several processes ends its run without an abort at exit (``exit_process``).

FSDP and DeepSpeed keep their process groups referenced after ``destroy_process_group``, so
gloo's worker threads outlive the run; one that needs the GIL once CPython has begun finalising
aborts a process whose run succeeded ("terminate called without an active exception", seen in
CI on ``tests/test_sharded.py`` runs). The script below makes that deterministic: a worker
thread is still in a Python callback of a finished collective when the process exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import atexit, os, sys, threading, time
    import torch, torch.distributed as dist
    from genforget.cli.launch import exit_process

    def needs_the_gil_until_exit(future):
        while not sys.is_finalizing():  # takes the GIL again every 10 ms
            time.sleep(0.01)

    rank, port, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    held = dist.new_group(backend="gloo")  # referenced after destroy_process_group, as FSDP does
    work = dist.all_reduce(torch.ones(4), group=held, async_op=True)
    if rank == 1:  # run by gloo's worker thread once the collective is done: it needs the GIL
        work.get_future().then(needs_the_gil_until_exit)
    else:
        work.wait()
    dist.barrier()  # the collective is done on both processes: no peer waits on this one
    dist.destroy_process_group()
    atexit.register(lambda: print("atexit handler ran"))
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
    print(f"rank {rank} done")  # left in the buffer: exit_process must flush it
    # Rank 0 (no callback pending) always leaves through exit_process: under sys.exit it could
    # wait in gloo's teardown for the peer that aborted.
    (exit_process if how == "exit_process" or rank == 0 else sys.exit)(3)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path, how: str) -> list[subprocess.CompletedProcess]:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    port = str(_free_port())
    env = {**os.environ, "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), port, how],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [p.communicate(timeout=120) for p in procs]  # before returncode, which it sets
    finally:
        for p in procs:
            p.kill()  # a no-op for those that ended
    return [
        subprocess.CompletedProcess(p.args, p.returncode, *o) for p, o in zip(procs, outputs, strict=True)
    ]


def test_one_of_several_processes_exits_with_its_code_while_a_worker_thread_needs_the_gil(tmp_path):
    for rank, proc in enumerate(_two_processes(tmp_path, "exit_process")):
        assert proc.returncode == 3, (rank, proc.stderr[-2000:])
        # What a normal exit does before finalising still happens: output flushed, handlers run,
        # non-daemon threads joined.
        assert proc.stdout.splitlines() == [f"rank {rank} done", "thread finished", "atexit handler ran"]


def test_the_same_exit_through_sys_exit_aborts(tmp_path):
    """The hazard exit_process avoids is real in this torch: if this starts to pass with a 3,
    torch has fixed its teardown and exit_process's os._exit could go."""
    rank0, rank1 = _two_processes(tmp_path, "sys.exit")
    assert rank0.returncode == 3
    assert rank1.returncode == -signal.SIGABRT, rank1.stderr[-2000:]


def test_a_single_process_exits_through_sys_exit(monkeypatch):
    from genforget.cli.launch import exit_process

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit) as e:
        exit_process(2)
    assert e.value.code == 2


def test_the_console_script_returns_the_verbs_code(monkeypatch, capsys):
    from genforget.cli.main import run

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(sys, "argv", ["genforget", "no-such-verb"])
    with pytest.raises(SystemExit) as e:
        run()
    assert e.value.code == 2 and "unknown verb" in capsys.readouterr().err


RACE = textwrap.dedent(
    """
    import os, sys, time
    from genforget.cli import launch

    launch.FAILURE_GRACE_S = float(sys.argv[1])
    if os.environ["RANK"] == "0":
        time.sleep(2)  # the main process reaches the same check a moment later
        print("error: reported by the main process", file=sys.stderr)
    launch.exit_process(2)
    """
)


@pytest.mark.parametrize("grace, reported", [(None, 1), (0.0, 0)])
def test_the_main_process_reports_a_failure_another_process_found_first(grace, reported, tmp_path):
    """torchrun stops every process once one fails: the other process's grace lets the main
    one print its error line (with no grace the launcher kills it first)."""
    from genforget.cli.launch import FAILURE_GRACE_S

    script = tmp_path / "race.py"
    script.write_text(RACE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(_free_port()), str(script), str(FAILURE_GRACE_S if grace is None else grace)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode != 0
    assert proc.stderr.count("error: reported by the main process") == reported, proc.stderr[-2000:]
