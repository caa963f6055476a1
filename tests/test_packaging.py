"""What a user installs: the licence, the Snakemake version the Snakefile demands, the files `emgrid` ships."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.workflow_helpers import REPO, tiny_config, write_config


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


def _install_wheel(tmp_path) -> Path:
    """Build emgrid's wheel from a copy of the checkout and install it (no deps: they are this venv's) into a folder."""
    src = tmp_path / "src-copy"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "results", ".snakemake", "build", "*.egg-info", "__pycache__", ".pytest_cache"
        ),
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    target = tmp_path / "site"
    wheel = next((tmp_path / "dist").glob("emgrid-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    shutil.rmtree(src)  # nothing may come from the checkout the wheel was built from
    return target


@pytest.mark.slow
def test_emgrid_plan_from_a_non_editable_install(tmp_path):
    """SCHEMA_PATH and DAG_DUMP_SCRIPT were found via parents[2] (the checkout), so an installed emgrid broke."""
    site = _install_wheel(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}  # before the editable install of this venv on sys.path
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import emgrid.config as c, emgrid.plan as p; "
            "print(c.__file__); print(c.SCHEMA_PATH.is_file(), p.DAG_DUMP_SCRIPT.is_file())",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(site / "emgrid" / "config.py"), "True", "True"]
    work = tmp_path / "work"
    work.mkdir()
    configfile = write_config(work, tiny_config())
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from emgrid.cli import main; sys.exit(main())",
            "plan",
            "--json",
            "--configfile",
            str(configfile),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--profile",
            str(REPO / "workflow" / "profiles" / "default"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    assert plan["rules"]["judge"]["to_run"] == 5 and plan["total"]["answers"] > 0


def _exported_repo() -> str | None:
    """The EMGRID_REPO that common.smk exports (the Snakefile's folder, i.e. this checkout), or None."""
    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    repo_is_basedir = re.search(r"^REPO = Path\(workflow\.basedir\)$", text, re.M)
    exported = re.search(r"^os\.environ\.update\(EMGRID_REPO=str\(REPO\)\)$", text, re.M)
    return str(REPO) if repo_is_basedir and exported else None


@pytest.mark.parametrize("env_file", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_conda_env_pip_line_finds_emgrid_from_snakemakes_copy(env_file, tmp_path, monkeypatch):
    """`--sdm conda`: Snakemake copies the env file to .snakemake/conda/<hash>.yaml, and conda writes its pip lines to a
    requirements file beside that copy and runs pip there. The old `-e ..` then meant .snakemake/, not the checkout.
    Parsed here by pip's own requirements parser (environment variables expanded as pip does)."""
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    copy_dir = tmp_path / "run" / ".snakemake" / "conda"
    copy_dir.mkdir(parents=True)
    copy = copy_dir / "0a1b2c3d4e5f.yaml"
    shutil.copy(REPO / "envs" / env_file, copy)
    pip_lines = next(d["pip"] for d in yaml.safe_load(copy.read_text())["dependencies"] if isinstance(d, dict))
    requirements = copy_dir / "condaenv.abc123.requirements.txt"
    requirements.write_text("\n".join(pip_lines) + "\n")
    monkeypatch.chdir(copy_dir)
    exported = _exported_repo()
    if exported is None:
        monkeypatch.delenv("EMGRID_REPO", raising=False)
    else:
        monkeypatch.setenv("EMGRID_REPO", exported)
    editable = [r.requirement for r in parse_requirements(str(requirements), session=PipSession()) if r.is_editable]
    assert len(editable) == 1, f"{env_file}: expected one editable install (emgrid), got {editable}"
    target = (copy_dir / editable[0]).resolve()
    pyproject = target / "pyproject.toml"
    assert pyproject.is_file(), f"{env_file}: pip line {editable[0]!r} resolves to {target}, not a checkout of emgrid"
    assert tomllib.loads(pyproject.read_text())["project"]["name"] == "emgrid"


def test_the_vllm_environment_gets_every_dependency_but_the_three_vllm_pins():
    """`make install-vllm` installs envs/vllm_deps.py's list: pyproject's dependencies less torch, transformers and
    numpy (vLLM's versions stay); a dependency added to pyproject reaches that environment too."""
    out = subprocess.run(
        [sys.executable, str(REPO / "envs" / "vllm_deps.py")], capture_output=True, text=True, check=True
    ).stdout.split()
    deps = _pyproject()["project"]["dependencies"]
    left_out = {d for d in deps if re.match(r"(torch|transformers|numpy)\b", d)}
    assert len(left_out) == 3 and out == [d for d in deps if d not in left_out]
    assert "vllm" not in _pyproject()["project"].get("optional-dependencies", {})  # unresolvable with the pins
    assert "envs/vllm_deps.py" in (REPO / "Makefile").read_text()
