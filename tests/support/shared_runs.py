"""Expensive test inputs built once per test session and shared: a completed run of the tiny grid, which every
workflow test that only needs a finished run copies instead of running the grid again.

Under pytest-xdist each worker is its own session: the first worker to ask builds the directory under the run's
common temporary root while holding a file lock, the others wait for it and reuse it. Consumers never write into the
shared directory; a test that edits or damages a run works on a copy (`copy_run`: outputs and `.snakemake` metadata,
seconds against minutes for a run)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.workflow_helpers import snakemake, tiny_config, write_config

#: The suffix of the marker written beside a directory once it is built: a build that failed halfway is built again,
#: not reused. Beside, not inside: a model's or a run's directory holds only what its build wrote.
DONE = ".built"


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory that every xdist worker of this run sees (the session's own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """`root/name`, filled by `build(dir)` by the first caller of any worker; later callers get the finished one."""
    target, done = root / name, root / f"{name}{DONE}"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                build(target)
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def tiny_grid_config() -> dict:
    """tiny.yaml with its question set read from `questions.yaml` in the run's directory (relative, so that a copy of
    the run reads its own copy of the file under the same path, and tests can edit it)."""
    config = tiny_config()
    config["question_sets"]["demo"]["path"] = "questions.yaml"
    return config


def build_tiny_grid(workdir: Path) -> None:
    """The whole tiny grid, run to the end in `workdir`."""
    shutil.copyfile(tiny_config()["question_sets"]["demo"]["path"], workdir / "questions.yaml")
    snakemake(workdir, write_config(workdir, tiny_grid_config()))


def copy_run(source: Path, dest: Path) -> Path:
    """A private copy of a run (results, caches and `.snakemake` metadata) that a test may edit or damage."""
    shutil.copytree(source, dest, symlinks=True)
    return dest
