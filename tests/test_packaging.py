"""What a user installs: the licence, the Snakemake version the Snakefile demands, the files `emgrid` ships."""

from __future__ import annotations

import re
import tomllib

from tests.workflow_helpers import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_snakefile_min_version_matches_pyproject():
    """min_version("9.0") let 9.0-9.26 start a workflow that needs 9.27; the two places must name one version."""
    dep = next(d for d in _pyproject()["project"]["dependencies"] if re.match(r"snakemake\s*[<>=]", d))
    lower = re.search(r">=\s*([0-9.]+)", dep)[1]
    declared = re.search(r'min_version\("([0-9.]+)"\)', (REPO / "Snakefile").read_text())[1]
    assert declared == lower, f"Snakefile min_version({declared!r}) but pyproject requires snakemake>={lower}"


def test_mit_license_is_shipped():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "emgrid developers" in text
    assert _pyproject()["project"]["license"] == "MIT"
