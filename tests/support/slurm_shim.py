"""A fast "no controller" answer for the SLURM client while the tests run without a cluster.

snakemake-executor-plugin-slurm builds its `--slurm-status-command` help at every Snakemake start, and for that runs
`scontrol show config`. Where a SLURM client is installed but no controller answers (a CI image before
scripts/slurm/start-slurm.sh, a laptop with slurm-client), that call waits 9 s for the connection to fail: every
Snakemake process of the suite (hundreds of dry runs) paid it, and `make test` took 12 min 15 s instead of 8. While
the tests run, such a machine gets stand-ins for `scontrol` and `sinfo` first on PATH that fail at once, as the real
ones end up failing. With a reachable controller (or no client at all) nothing changes, so the SLURM tests still
talk to the real cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Set once the check has run (in the pytest process that ran it, and inherited by the xdist workers it starts).
MARK = "EMGRID_TEST_SLURM_CHECKED"
STAND_INS = ("scontrol", "sinfo")
SCRIPT = """#!/bin/sh
echo "$(basename "$0"): Unable to contact slurm controller (stand-in from tests/support/slurm_shim.py: no controller \
answered when the tests started)" >&2
exit 1
"""


def controller_silent(timeout_s: float = 5.0) -> bool:
    """True when `scontrol` is installed but `scontrol ping` says the controller is down (it answers that at once,
    from the configuration) or gets no answer within `timeout_s`."""
    if shutil.which("scontrol") is None:
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=timeout_s).returncode != 0
    except subprocess.TimeoutExpired:
        return True


def install_if_no_controller() -> Path | None:
    """Put the stand-ins first on PATH (for this process and its children) when no controller answers; the folder
    of the stand-ins, or None when nothing was done. Runs the check once per test run."""
    if os.environ.get(MARK):
        return None
    os.environ[MARK] = "1"
    if not controller_silent():
        return None
    folder = Path(tempfile.mkdtemp(prefix="emgrid-no-slurm-"))
    for name in STAND_INS:
        path = folder / name
        path.write_text(SCRIPT)
        path.chmod(0o755)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    return folder
