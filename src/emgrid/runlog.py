"""Job logging for workflow scripts: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import logging
import os
import platform
import sys
from pathlib import Path

from emgrid.parent_watch import exit_with_snakemake

log = logging.getLogger("emgrid")

# What a log must show to prove where a job ran (SLURM tests read these lines).
_ENV_KEYS = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES")


def redirect_to_log(path: str | Path, threads: int | None = None) -> logging.Logger:
    """Send stdout, stderr and the `emgrid` logger to `path` (line-buffered), record the job's environment, and
    make the job exit when its Snakemake process is killed (emgrid.parent_watch).

    Secrets are never logged: only the named, non-secret variables above are written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    env = " ".join(f"{k}={os.environ[k]}" for k in _ENV_KEYS if k in os.environ)
    log.info(
        "host=%s pid=%s python=%s %s",
        platform.node(),
        os.getpid(),
        platform.python_version(),
        env or "(no SLURM/CUDA variables)",
    )
    parent = exit_with_snakemake()
    if parent is not None:
        log.info("this job stops when snakemake (pid %s) is killed", parent)
    if threads:
        try:
            import torch

            torch.set_num_threads(int(threads))
        except ImportError:
            pass
        log.info("threads=%s", threads)
    return log
