"""Jobs end when the Snakemake process that started them is killed.

Snakemake runs a `script:` job as `bash -c "...; python script.py"`. When Snakemake itself is killed with SIGKILL
(an OOM killer, `kill -9`, a lost login node), nothing tells its children: a finetune or generate job would keep
its GPU and CPUs for hours, writing outputs no one records. Two guards, Linux only:

- the kernel's parent-death signal (prctl PR_SET_PDEATHSIG): SIGTERM when the job's direct parent (the shell) dies;
- a daemon thread that checks every `poll_s` seconds whether the nearest `snakemake` ancestor still runs (same pid,
  same start time, not a zombie) and sends the job SIGTERM when it does not.

Outputs are written atomically, so a job stopped this way leaves nothing half-written; Snakemake reruns it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks) of a process, from /proc; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if any(os.path.basename(a) == b"snakemake" for a in argv):
        return True
    return any(a == b"-m" and b == b"snakemake" for a, b in zip(argv, argv[1:]))


def snakemake_ancestor(pid: int | None = None) -> tuple[int, int] | None:
    """(pid, start time) of the nearest ancestor running snakemake, or None (not started by snakemake)."""
    pid = os.getppid() if pid is None else pid
    while pid > 1:
        st = _stat(pid)
        if st is None:
            return None
        if _is_snakemake(pid):
            return pid, st[2]
        pid = st[1]
    return None


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] not in ("Z", "X")


def _set_parent_death_signal(sig: int) -> None:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the watcher thread still covers it
        pass


def exit_with_snakemake(poll_s: float = 2.0) -> int | None:
    """Arrange for this process to get SIGTERM when its Snakemake ancestor dies; returns that ancestor's pid."""
    if not sys.platform.startswith("linux"):
        return None
    _set_parent_death_signal(signal.SIGTERM)
    found = snakemake_ancestor()
    if found is None:
        return None
    pid, start = found

    def watch() -> None:
        while _alive(pid, start):
            time.sleep(poll_s)
        log.error("snakemake (pid %s) is gone: stopping this job (rerun snakemake to redo it)", pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-snakemake", daemon=True).start()
    return pid
