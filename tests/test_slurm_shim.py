"""tests/support/slurm_shim.py: stand-ins for an absent SLURM controller only, never in front of a live one."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support import slurm_shim


def _fake_scontrol(folder, rc: int):
    folder.mkdir(exist_ok=True)
    path = folder / "scontrol"
    path.write_text(f"#!/bin/sh\necho 'Slurmctld(primary) at vm is {'UP' if rc == 0 else 'DOWN'}'\nexit {rc}\n")
    path.chmod(0o755)
    return folder


@pytest.mark.parametrize("rc, installed", [(1, True), (0, False)])
def test_stand_ins_go_first_on_path_only_when_the_controller_is_down(tmp_path, monkeypatch, rc, installed):
    monkeypatch.setenv("PATH", f"{_fake_scontrol(tmp_path / 'bin', rc)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(slurm_shim.MARK, raising=False)
    folder = slurm_shim.install_if_no_controller()
    assert (folder is not None) == installed
    if installed:
        assert os.environ["PATH"].split(os.pathsep)[0] == str(folder)
        for name in slurm_shim.STAND_INS:  # what Snakemake's SLURM plugin runs at start now fails at once
            proc = subprocess.run([name, "show", "config"], capture_output=True, text=True, timeout=5)
            assert proc.returncode == 1 and "Unable to contact slurm controller" in proc.stderr
    assert slurm_shim.install_if_no_controller() is None  # checked once per test run


def test_no_slurm_client_no_stand_ins(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert slurm_shim.controller_silent() is False
