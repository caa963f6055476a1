"""How long `emgrid plan` takes on big grids, next to a bare `snakemake -n` on the same grid and profile.

Grids, both built from one config (default config/config.yaml, the paper grid, as it is: its models, domains,
variants, seeds and question sets; nothing here assumes how many of each):
  paper: the config itself
  10x:   the config with --scale (default 10) times the seeds: ten times the cells, steering runs and jobs.
         `--scale-by domains` copies every domain instead, but the steering matrix grows with the square of the
         domains: 10x the paper grid's domains is ~600,000 jobs, a dry run of hours and over 10 GB (see
         scaled_config)
Both are planned with the slurm profile (what a cluster user plans with). The grid's size (models, domains, jobs,
cells) is read from the config and from the plan, never assumed. For each grid it prints wall and CPU seconds (CPU:
user+sys of the child processes, steadier than wall time on a shared machine) of
  emgrid plan             the planner (child snakemake builds the DAG, dumps the jobs, never schedules)
  snakemake -n            a bare dry run (builds the DAG, then prints every job)
  snakemake -n --quiet    the DAG alone (prints nothing per job): the floor any snakemake-based planner pays
(child snakemake: the wall time of plan's child process; the rest of plan is reading its dump and summing)
each printed as it ends, and one ratio line per grid: plan / `snakemake -n` (and / `-n --quiet`), wall and CPU,
measured side by side in this one run. `--arms plan n` leaves the --quiet arm out (a 10x grid's arms take long).
Snakemake runs in the repository root (relative paths in a config are read from there), whatever the current folder:
  python bench/bench_plan.py                     # paper grid (~1 min) + 10x grid (~10 min: 2-5 min per arm)
  python bench/bench_plan.py --grids paper       # the paper grid alone
  python bench/bench_plan.py --smoke             # config/demo.yaml and twice its seeds: seconds (the test suite's)
Dry runs read no data and need no network: they only print what is missing under "before you run".
Measured 2026-12-04 on 2 cores with the other jobs of the machine idle (load ~1; wall and CPU within 2 %), the paper
grid of three models: paper, 8,040 jobs: plan 16.4 s, snakemake -n 23.5 s, -n --quiet 13.5 s (plan / -n 0.70x);
10x seeds, 79,509 jobs: plan 142.4 s, snakemake -n 264.7 s, -n --quiet 116.0 s (plan / -n 0.54x).
"""

from __future__ import annotations

import argparse
import copy
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILE = ["--profile", "workflow/profiles/slurm"]

sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from emgrid.plan import plan  # noqa: E402
from smoke import parse_args  # noqa: E402

PAPER = REPO / "config" / "config.yaml"
SMOKE = {"config": REPO / "config" / "demo.yaml", "scale": 2}  # the demo grid (86 jobs) and twice its seeds


def scaled_config(base: dict, scale: int, by: str = "seeds") -> dict:
    """`base` grown `scale` times along one axis of the grid:
    seeds:   `scale` times the seeds (new ones above the config's highest): `scale` times every cell and every
             steering run, so about `scale` times the jobs;
    domains: every domain copied (the original plus scale - 1 copies named `{domain}_x{k}`, same recipe). The
             steering matrix (every backdoor source x every plain target of its model and seed) grows with the
             square of the domains: at 10x the paper grid's 3,236 steering runs become 293,702 (~75x the jobs)."""
    cfg = copy.deepcopy(base)
    if by == "seeds":
        seeds = list(base["seeds"])
        cfg["seeds"] = seeds + [max(seeds) + 1 + i for i in range(len(seeds) * (scale - 1))]
        return cfg
    domains = {}
    for name, spec in base["domains"].items():
        domains[name] = copy.deepcopy(spec)
        for k in range(1, scale):
            domains[f"{name}_x{k}"] = copy.deepcopy(spec)
    cfg["domains"] = domains
    return cfg


def grid_shape(cfg: dict) -> str:
    """What the grid holds, read from its config (so the figures stay right as the config changes)."""
    return (
        f"{len(cfg['models'])} models x {len(cfg['domains'])} domains x {len(cfg.get('variants', []))} variants x "
        f"{len(cfg.get('seeds', []))} seeds, {len(cfg.get('question_sets', {}))} question sets"
    )


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


ARMS = {"plan": "emgrid plan", "n": "snakemake -n", "quiet": "snakemake -n --quiet"}


def measure(name: str, cfgfile: Path, repeat: int, arms: list[str]) -> None:
    """The arms on one grid, one after the other, each printed as it ends (a 10x grid's dry run takes many minutes:
    what has ended is not lost if the rest is stopped), then the grid's ratio line."""
    run = {
        "plan": lambda: plan([*PROFILE, "--configfile", str(cfgfile)], cwd=REPO),
        "n": lambda: bare_dry_run(cfgfile),
        "quiet": lambda: bare_dry_run(cfgfile, "--quiet", "rules", "progress"),
    }
    got, jobs = {}, ""
    for arm in arms:
        wall, cpu, result = timed(run[arm], repeat)
        got[arm] = (wall, cpu)
        what = ""
        if arm == "plan":
            jobs = f" ({result.total.jobs} jobs)"
            what = f" ({result.total.jobs} jobs, {result.cells} cells; child snakemake {result.dag_seconds:.1f} s)"
        print(f"{name:<6} {ARMS[arm]:<22} wall {wall:>7.1f} s  CPU {cpu:>7.1f} s{what}", flush=True)
    ratios = [
        f"emgrid plan / {ARMS[arm]}: wall {got['plan'][0] / got[arm][0]:.2f}x, CPU {got['plan'][1] / got[arm][1]:.2f}x"
        for arm in ("n", "quiet")
        if "plan" in got and arm in got
    ]
    if ratios:
        print(f"ratio on {name}{jobs}: " + "; ".join(ratios), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=PAPER, help="the grid's config (default config/config.yaml)")
    ap.add_argument("--scale", type=int, default=10, help="how many times bigger the big grid is (default 10)")
    ap.add_argument("--scale-by", choices=["seeds", "domains"], default="seeds", help="the axis grown (see above)")
    ap.add_argument("--grids", nargs="+", choices=["paper", "10x"], default=["paper", "10x"])
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (the best is reported)")
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="what to time on each grid")
    a = parse_args(ap, argv, SMOKE)
    config = a.config.resolve()
    base = yaml.safe_load(config.read_text())
    print(f"config {config.relative_to(REPO) if config.is_relative_to(REPO) else config}, profile {PROFILE[1]}")
    with tempfile.TemporaryDirectory(prefix="emgrid-bench-plan-") as tmp:
        for name in a.grids:
            cfg = base if name == "paper" else scaled_config(base, a.scale, a.scale_by)
            label = f"{a.scale}x" if name == "10x" else "paper" if config == PAPER else config.stem
            cfgfile = Path(tmp) / f"{label}.yaml"
            cfgfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
            print(f"# {label}: {grid_shape(cfg)}", flush=True)
            measure(label, cfgfile, a.repeat, a.arms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
