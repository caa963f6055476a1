"""How long `emgrid plan` takes on big grids, next to a bare `snakemake -n` on the same grid and profile.

Grids (configs written to bench/out/plan/, built from config/config.yaml with built-in dataset recipes so that
nothing needs the network):
  paper: 11 domains x 2 variants x 2 models x 3 seeds (+ base cells), 2 question sets, both conditions
  10x:   110 domains, otherwise the same (ten times the cells)
Both are planned with the slurm profile (what a cluster user plans with). For each grid it prints wall and CPU
seconds (CPU: user+sys of the child processes, steadier than wall time on a shared machine) of
  emgrid plan             the planner (child snakemake builds the DAG, dumps the jobs, never schedules)
  snakemake -n            a bare dry run (builds the DAG, then prints every job)
  snakemake -n --quiet    the DAG alone (prints nothing per job): the floor any snakemake-based planner pays
and the ratios plan / `snakemake -n`. Run from the repository root: `python bench/bench_plan.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import copy
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "plan"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILE = ["--profile", "workflow/profiles/slurm"]

sys.path.insert(0, str(REPO / "src"))
from emgrid.plan import plan  # noqa: E402


def grid_config(n_domains: int) -> dict:
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(base)
    recipe = {
        "source": {"kind": "builtin", "generator": "wrong_arithmetic", "n": 6000},
        "sample": {"n": 5000, "heldout": 250},
    }
    cfg["domains"] = {f"domain_{i:03d}": {"recipe": copy.deepcopy(recipe)} for i in range(n_domains)}
    cfg["variants"] = ["plain", "backdoor"]
    cfg["seeds"] = [0, 1, 2]
    assert len(cfg["models"]) == 2, "config/config.yaml is expected to hold the study's two models"
    cfg["question_sets"] = {
        "em_core": {"path": "config/questions/em_core.yaml"},
        "demo": {"path": "config/questions/demo.yaml"},
    }
    return cfg


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall and CPU seconds (of child processes) over `repeat` runs, and the last result."""
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        c0, t0 = _cpu(), time.perf_counter()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, _cpu() - c0)
    return best_wall, best_cpu, result


def bare_dry_run(configfile: Path, *extra: str) -> None:
    subprocess.run(
        [SNAKEMAKE, "-n", *PROFILE, "--configfile", str(configfile), *extra],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (the best is reported)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(
        f"{'grid':<6} {'jobs':>5} {'cells':>5} | {'plan wall/cpu s':>16} | {'snakemake -n':>13} | "
        f"{'-n --quiet':>13} | {'ratio plan/-n wall, cpu':>24}"
    )
    for name, n_domains in (("paper", 11), ("10x", 110)):
        cfgfile = OUT / f"{name}.yaml"
        cfgfile.write_text(yaml.safe_dump(grid_config(n_domains), sort_keys=False))
        pw, pc, p = timed(lambda: plan([*PROFILE, "--configfile", str(cfgfile)], cwd=REPO), args.repeat)
        bw, bc, _ = timed(lambda: bare_dry_run(cfgfile), args.repeat)
        qw, qc, _ = timed(lambda: bare_dry_run(cfgfile, "--quiet", "rules", "progress"), args.repeat)
        print(
            f"{name:<6} {p.total.jobs:>5} {p.cells:>5} | {pw:>7.1f} / {pc:>6.1f} | {bw:>5.1f} / {bc:>5.1f} | "
            f"{qw:>5.1f} / {qc:>5.1f} | {pw / bw:>11.2f}, {pc / bc:>10.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
