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
from pathlib import Path

from genforget.cli.common import EXIT_FILE_ENV


def launched() -> bool:
    """Whether this process was started by a launcher (torchrun / accelerate / this module)."""
    return "LOCAL_RANK" in os.environ or EXIT_FILE_ENV in os.environ


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
