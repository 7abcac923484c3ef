"""``genforget unlearn --accelerate_config FILE``: several processes, and one clean failure.

``accelerate launch`` turns any process's non-zero exit into torch-elastic's ``ChildFailedError``:
its own traceback, a failure table per rank, exit code 1, whatever the processes said. A usage
error found after the processes start (a LoRA target the model lacks, a tokenizer that does not
fit) then reads as a crash. With ``--accelerate_config`` the verb launches itself under
``accelerate launch`` (as trl's CLI does with its ``--accelerate_config``); the main process
hands an expected failure (usage error: 2; outcome not forgotten: 3) to this process through a
file instead of printing it, and this process prints it once, drops the launcher's report of the
failure, and exits with that code. Anything else (a crash) passes through untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn

from genforget.cli.common import EXIT_FILE_ENV, is_main_rank

# How long another process that fails waits before it leaves, so that the main process can
# report the failure first (see exit_process).
FAILURE_GRACE_S = 5.0


def launched() -> bool:
    """Whether this process was started by a launcher (torchrun / accelerate / this module)."""
    return "LOCAL_RANK" in os.environ or EXIT_FILE_ENV in os.environ


def exit_process(code: int) -> NoReturn:
    """End a CLI process with ``code``; one of several processes (``WORLD_SIZE`` > 1) ends
    without interpreter finalisation.

    Why: FSDP and DeepSpeed keep references to their gloo/NCCL process groups after
    ``destroy_process_group``, so the groups' worker threads outlive the run. If one of them
    needs the GIL (a Python callback on a finished collective, a tensor whose Python object
    it frees) once CPython has begun finalising, CPython ends that thread inside C++ code that
    may not unwind, and the process aborts ("terminate called without an active exception",
    SIGABRT) after a run that succeeded: the launcher then reports a failure. So such a process
    does what a normal exit does up to finalisation (joins its non-daemon threads, runs the
    ``atexit`` handlers, flushes its output) and then leaves with ``os._exit(code)``. Everything
    the run writes is closed before this is called; the processes have passed their last
    barrier, so no peer waits on this one.

    A failing process other than the main one waits :data:`FAILURE_GRACE_S` first: torchrun
    stops every process as soon as one exits non-zero, and only the main process reports an
    expected failure (:func:`genforget.cli.common.fail`), usually a moment later at the same
    check. The launcher ends the wait when the main process exits.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        sys.exit(code)
    if code and not is_main_rank():
        time.sleep(FAILURE_GRACE_S)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    import atexit

    atexit._run_exitfuncs()  # what finalisation would run first (logging.shutdown among them)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed by the caller, or a broken pipe: nothing left to save
            pass
    os._exit(code)


def relaunch(verb: str, argv: list[str], config_file: str) -> int:
    """Run ``genforget <verb> <argv>`` under ``accelerate launch --config_file config_file``."""
    if not Path(config_file).is_file():
        print(f"error: --accelerate_config: file not found: {config_file}", file=sys.stderr)
        return 2
    fd, exit_file = tempfile.mkstemp(prefix="genforget-exit-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_file]
    cmd += ["--module", "genforget.cli.main", verb, *argv]
    env = {**os.environ, EXIT_FILE_ENV: exit_file}
    try:
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        for line in proc.stderr:
            # Once the main process has reported an expected failure, what follows is the
            # launcher's report of the processes' non-zero exit: not shown.
            if not os.path.getsize(exit_file):
                sys.stderr.write(line)
                sys.stderr.flush()
        rc = proc.wait()
        text = Path(exit_file).read_text()
    finally:
        Path(exit_file).unlink(missing_ok=True)
    if text:
        failure = json.loads(text)
        print(f"error: {failure['message']}", file=sys.stderr)
        return int(failure["code"])
    return rc
