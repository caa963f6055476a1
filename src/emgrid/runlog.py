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

#: What torch reads for its intra-op thread count (OpenMP) and MKL for its own, when each first starts.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
        use_threads(int(threads))
        log.info("threads=%s", threads)
    return log


def use_threads(threads: int) -> None:
    """Hold torch to the job's `threads`, without importing it: most jobs (datasets, aggregation, plots, the report)
    never use torch, and importing it only to set a thread count cost each of them 1.5-2.5 s. Before torch is
    imported, the variables that torch (and the MKL under it) read when they start carry the count; once it is
    imported, torch is told directly. (From the environment torch takes at most the cores it sees, where
    `set_num_threads` would oversubscribe them: the same count wherever a job's threads fit its cores.)"""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        return
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
