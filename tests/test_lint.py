"""The static checks CI runs (`make lint`): snakemake's linter and ruff's bug-finding rules both find nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.workflow_helpers import REPO

BIN = Path(sys.executable).parent


@pytest.mark.slow  # snakemake --lint
def test_snakemake_lint_is_clean():
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--lint", "--configfile", "config/demo.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_ruff_check_is_clean():
    proc = subprocess.run(
        [str(BIN / "ruff"), "check", "src", "tests", "workflow", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
