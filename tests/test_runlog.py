"""A job's log set-up (emgrid.runlog): the job's threads reach torch whether or not it is already imported, and a job
that never uses torch does not import it (that import cost every dataset, aggregation, plot and report job 1.5-2.5 s).
Each case runs in a fresh interpreter: whether torch is imported is the point, and torch's thread count is global."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # two interpreters importing torch

SETUP = "import json, sys\nfrom emgrid.runlog import redirect_to_log\n"


def _run(code: str, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = tmp_path / "out.json"
    script = f"{SETUP}{code}\nopen({str(out)!r}, 'w').write(json.dumps(result))\n"
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_a_job_that_uses_no_torch_does_not_import_it_and_torch_later_takes_the_jobs_threads(tmp_path):
    result = _run(
        f"redirect_to_log({str(tmp_path / 'job.log')!r}, 1)\n"
        "imported = 'torch' in sys.modules\n"
        "import torch\n"
        "result = {'imported': imported, 'threads': torch.get_num_threads()}",
        tmp_path,
    )
    # 1, not torch's default of every core (torch caps a count from the environment at the cores it sees)
    assert result == {"imported": False, "threads": 1}
    assert "threads=1" in (tmp_path / "job.log").read_text()


def test_torch_imported_before_the_log_is_set_to_the_jobs_threads(tmp_path):
    result = _run(
        "import torch\n"
        f"redirect_to_log({str(tmp_path / 'job.log')!r}, 3)\n"
        "result = {'threads': torch.get_num_threads()}",
        tmp_path,
    )
    assert result == {"threads": 3}
