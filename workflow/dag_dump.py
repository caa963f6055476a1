"""Child process of `emgrid plan`: snakemake's own CLI parsing and DAG construction, dumped as JSON.

It lives outside src/emgrid because it is the one piece that imports snakemake (the library never does). It parses
the arguments exactly like the `snakemake` command, builds the dry-run DAG, writes one record per job and stops
before any job is scheduled.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from emgrid.gridspec import Grid
from emgrid.jobparams import analysis_params
from emgrid.plan import PLAN_ESTIMATE_KEYS, PLAN_HOOK, PLAN_RESOURCES, REASON_LABELS
from emgrid.power_plan import designs


def _estimate(workflow, job) -> dict:
    """The planner's figures for one job, from the workflow's PLAN_HOOK function (config + wildcards); {} without one.

    They are computed here rather than read from params so that a better estimate never reruns a job.
    """
    hook = workflow.globals.get(PLAN_HOOK)
    if not callable(hook):
        return {}
    found = hook(job.rule.name, job.wildcards) or {}
    return {k: found[k] for k in PLAN_ESTIMATE_KEYS if k in found}


def _power(workflow) -> dict:
    """The designs and analysis settings `emgrid plan`'s minimum-detectable-effect table needs (emgrid.power_plan),
    from the emgrid workflow's validated config (its Grid object, `G` in common.smk); {} for another Snakefile."""
    grid = workflow.globals.get("G")
    if not isinstance(grid, Grid):
        return {}
    return {"designs": designs(grid.config), "analysis": analysis_params(grid.config)}


def _plain(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


class _Dumped(BaseException):  # BaseException: passes through snakemake's `except Exception` error printing
    pass


def _job_record(workflow, dag, job, local: set[str]) -> dict:
    """One job of the DAG as the plan reads it; what only a job that will run has (reasons, estimate, resources,
    threads, log) is filled in for those alone."""
    needrun = bool(dag.needrun(job))
    rec = {
        "rule": job.rule.name,
        "wildcards": {k: str(v) for k, v in job.wildcards_dict.items()},
        "needrun": needrun,
        "reasons": [],
        "reason_text": "",
        "estimate": {},
        "resources": {},
        "threads": 1,
        "local": job.rule.name in local or bool(job.rule.norun),
        "log": [],
    }
    if needrun:
        reason = dag.reason(job)
        rec["reasons"] = sorted({REASON_LABELS.get(n, n) for n in reason.get_names()})
        rec["reason_text"] = str(reason)
        rec["estimate"] = {k: _plain(v) for k, v in _estimate(workflow, job).items()}
        # Evaluate only the resources the plan reads: snakemake's full default set includes
        # disk_mb = f(input size), which stats every input and took most of the time on big grids.
        skip = {k for k in job.rule.resources.keys() if k not in PLAN_RESOURCES}
        res = job.rule.expand_resources(job.wildcards_dict, job.input, job.attempt, skip_evaluation=skip)
        rec["resources"] = {
            k: _plain(v) for k, v in res.items() if not k.startswith("_") and type(v).__name__ != "TBDString"
        }
        rec["threads"] = int(res.get("_cores", 1) or 1)
        rec["log"] = [str(f) for f in job.log]
    return rec


def _write_dag(workflow, out_path: str) -> None:
    """The final DAG's jobs, local rules, judge prices and the config check's warnings, as JSON in `out_path`
    (written in one rename)."""
    dag = workflow.dag
    local = set(getattr(workflow, "_localrules", set()))
    jobs = [_job_record(workflow, dag, job, local) for job in dag.jobs]
    judge = workflow.config.get("judge", {}) if isinstance(workflow.config, dict) else {}
    findings = workflow.globals.get("FINDINGS")  # the Snakefile's config check (workflow/rules/common.smk)
    payload = {
        "jobs": jobs,
        "localrules": sorted(local),
        "judge": {k: judge[k] for k in ("prices", "model", "backend") if k in judge},
        "before_you_run": list(findings.warnings) if findings is not None else [],
        "power": _power(workflow),
    }
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    os.replace(tmp, out_path)


def _dump_dag_child(out_path: str, argv: list[str]) -> int:
    """Run snakemake's own CLI parsing + DAG construction, dump the DAG and stop before any job is scheduled."""
    import snakemake.cli as smcli
    import snakemake.workflow as smwf

    def dump_instead_of_scheduling(workflow, *args, **kwargs):
        _write_dag(workflow, out_path)
        raise _Dumped()

    if not hasattr(smwf, "JobScheduler"):  # the one snakemake internal this relies on (checked with 9.27)
        sys.exit(
            "emgrid plan: this snakemake version has no snakemake.workflow.JobScheduler; "
            "emgrid plan supports snakemake 9.x"
        )
    smwf.JobScheduler = dump_instead_of_scheduling  # execute() builds the scheduler right after the DAG is final
    ours = ["--dry-run", "--quiet", "rules", "progress"]
    # after the user's options (`--quiet` takes several values and would swallow targets placed after it), but
    # before a `--` (everything after it is a target)
    cut = argv.index("--") if "--" in argv else len(argv)
    full = [*argv[:cut], *ours, *argv[cut:]]
    try:
        parser, args = smcli.parse_args(full)
        if args.cores is None:
            # A dry run caps every job's threads at 1 core unless told otherwise; the real run does not: remote jobs
            # get their own nodes (uncapped), local runs use the machine (`--cores all`).
            remote = args.executor not in (None, "local", "dryrun", "touch")
            args.cores = 1_000_000 if remote else (os.cpu_count() or 1)
        ok = smcli.args_to_api(args, parser)
    except _Dumped:
        return 0
    return 0 if ok and os.path.exists(out_path) else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python workflow/dag_dump.py OUT.json -- <snakemake args>  (use `emgrid plan` instead)")
    rest = sys.argv[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    sys.exit(_dump_dag_child(sys.argv[1], rest))
