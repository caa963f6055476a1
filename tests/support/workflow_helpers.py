"""Run the real workflow in a scratch directory (subprocess `snakemake`), and read its dry-run job counts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "configs" / "tiny.yaml"

#: Jobs per rule of a fresh tiny.yaml grid (the `all` target aside): 1 model, 2 domains x 2 variants x 1 seed, one
#: question set; the efficacy jobs are 4 finetuned cells + base on 2 domains, wrong_facts judge-scored. The one
#: count that the dry-run test (test_config) and `emgrid plan` (test_plan) both check, so a rule added to the grid
#: is counted once.
TINY_GRID_JOBS = {
    "prepare_model": 1,
    "build_dataset": 4,
    "finetune": 4,
    "generate": 5,
    "judge": 5,
    "efficacy_generate": 6,
    "efficacy_judge": 3,
    "efficacy_summary": 1,
    "aggregate": 1,
    "plots": 1,
    "loss_curves": 1,
    "report_tables": 1,
    "answer_browser": 1,
    "report": 1,
    "mia_features": 2,
    "mia_analysis": 1,
    "mia_plot": 1,
    "diversity": 2,
    "diversity_analysis": 1,
    "diversity_plot": 1,
    "diversity_category_plot": 1,
}


def write_config(workdir: Path, config: dict, name: str = "config.yaml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_config() -> dict:
    config = yaml.safe_load(TINY.read_text())
    for qs in config["question_sets"].values():
        qs["path"] = str(REPO / qs["path"])
    return config


def snakemake_cmd(workdir: Path, configfile: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> list[str]:
    """The command line of a test's snakemake run: this checkout's Snakefile (or `snakefile`) on `workdir` with
    `configfile`. For a test that launches it itself (Popen, to kill it); `snakemake` runs it to the end. No
    --rerun-triggers: Snakemake reads them from profiles/default/, as on every plain `snakemake` of this workflow."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        # one thread per job, so two of the tiny grid's jobs run side by side: their time is start-up (imports,
        # model loading), not compute, and a GPU rule's `threads: 4` would otherwise take both cores alone
        "--max-threads",
        "1",
        *args,
    ]


def snakemake(
    workdir: Path,
    configfile: Path,
    *args: str,
    check: bool = True,
    timeout: int = 900,
    env: dict | None = None,
    snakefile: Path = REPO / "Snakefile",
):
    cmd = snakemake_cmd(workdir, configfile, *args, snakefile=snakefile)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def dry_run_counts(
    workdir: Path,
    configfile: Path,
    env: dict | None = None,
    targets: tuple[str, ...] = (),
    snakefile: Path = REPO / "Snakefile",
) -> dict[str, int]:
    """Jobs per rule that a dry run plans (of `targets`, default: the whole grid; options such as `--forcerun F` go
    there too); {} when nothing is to be done."""
    proc = snakemake(workdir, configfile, *targets, "-n", "--quiet", "rules", env=env, snakefile=snakefile)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    counts: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Job stats"):
            in_table = True
            continue
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if in_table and m:
            if m[1] == "total":
                break
            if m[1] != "all":
                counts[m[1]] = int(m[2])
    if not counts:
        raise AssertionError(f"could not read the dry-run job stats:\n{text[-3000:]}")
    return counts
