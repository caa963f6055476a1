"""A job exits when the Snakemake process that started it is killed with SIGKILL (nothing else would tell it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from emgrid.parent_watch import _stat

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux-only")

JOB = """
import os, sys, time
from emgrid.parent_watch import exit_with_snakemake
watched = exit_with_snakemake(poll_s=0.2)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {watched}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
"""

# Like snakemake's local executor: the job runs under `bash -c "set -euo pipefail; python script.py"`.
FAKE_SNAKEMAKE = """
import subprocess, sys
subprocess.run(["bash", "-c", f"set -euo pipefail; {sys.executable} {sys.argv[1]} {sys.argv[2]}"])
"""


def gone(pid: int) -> bool:
    st = _stat(pid)
    return st is None or st[0] in ("Z", "X")


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_job_exits_when_snakemake_is_killed(tmp_path):
    job, fake, pidfile = tmp_path / "job.py", tmp_path / "snakemake", tmp_path / "pid"
    job.write_text(JOB)
    fake.write_text(FAKE_SNAKEMAKE)
    parent = subprocess.Popen([sys.executable, str(fake), str(job), str(pidfile)])
    try:
        assert wait_for(pidfile.exists, 60), "the job did not start"
        job_pid, watched = pidfile.read_text().split()
        assert int(watched) == parent.pid  # found through the bash in between
        assert not gone(int(job_pid))
        os.kill(parent.pid, signal.SIGKILL)
        assert wait_for(lambda: gone(int(job_pid)), 15), "the job outlived its snakemake"
    finally:
        parent.kill()
        parent.wait()
