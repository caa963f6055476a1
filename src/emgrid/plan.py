"""Dry-run planning: which jobs a run would start and why, and what they would cost (GPU/CPU-hours, judge tokens, USD).

Snakemake computes the real job list (rerun triggers, profile-applied resources, params). The library never imports
snakemake, so the DAG is read in a child process (`python workflow/dag_dump.py OUT -- <snakemake args>`) that
parses the arguments exactly like the `snakemake` command (profiles, `--configfile`, `--set-resources` ...), builds
the DAG as a dry run does, writes one JSON record per job and stops before scheduling. Everything after that
(`summarize`, and emgrid.plan_format's `format_table` and `plan_to_json`) is pure and works on those records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from emgrid.errors import EmgridError
from emgrid.power_plan import power_for_plan
from emgrid.prices import price_row
from emgrid.throughput import Calibration, choose_calibration, estimate_seconds
from emgrid.throughput_model import FEATURE_KEYS

# workflow/dag_dump.py, the one place that imports snakemake (beside the Snakefile's rules), shipped inside the
# package (a link in the repository) so that an installed `emgrid plan` finds it. It is run, never imported.
DAG_DUMP_SCRIPT = Path(__file__).parent / "workflow_files" / "dag_dump.py"

# The figures the planner counts per job. They come from the workflow's `plan_estimate(rule, wildcards)` function
# (common.smk: emgrid.gridspec.Grid.plan_estimate), never from job params: params are rerun triggers, and editing an
# estimate must rerun nothing.
PLAN_HOOK = "plan_estimate"
PLAN_ESTIMATE_KEYS = (
    "n_answers",
    "n_requests",
    "judge_model",
    "backend",
    "est_prompt_tokens",
    "est_completion_tokens",
    "api_model",
    "est_train_tokens",
    "est_gen_prompt_tokens",
    "est_gen_completion_tokens",
    "est_gpu_tokens",
    "n_items",  # what a scoring GPU job (steering_direction, mia_features) runs the model over
    *FEATURE_KEYS,  # what a GPU job's seconds depend on besides its tokens (emgrid.throughput_model)
)

# Resources the planner evaluates: what hours and GPUs are computed from. The others (mem_mb, partition ...) are
# skipped: each evaluation costs snakemake ~0.3 ms, and disk_mb's default stats every input file.
PLAN_RESOURCES = frozenset({"_cores", "runtime", "gpu", "gpus", "nvidia_gpu", "gres", "cpus_per_task"})

# Snakemake's Reason.get_names() strings -> short labels, in the order we pick a job's *primary* reason.
REASON_LABELS = {
    "forced": "forced",
    "output files have to be generated": "new output",
    "incomplete output files": "incomplete output",
    "params have changed since last execution": "params changed",
    "code has changed since last execution": "code changed",
    "set of input files has changed since last execution": "input set changed",
    "software environment definition has changed since last execution": "software changed",
    "updated input files": "input newer (mtime)",
    "input files updated by another job": "upstream rerun",
    "neither input nor output": "always runs",
    "run or shell but no output": "always runs",
    "pipe output needed by consuming job": "pipe",
    "provides service for consuming job": "service",
    "input is yielded by queue that has not been terminated yet": "queue input",
}
_REASON_ORDER = list(dict.fromkeys(REASON_LABELS.values()))

# Judge backends that call a paid API; other backends (e.g. "hf", a local model) cost no tokens.
PAID_BACKENDS = ("openai", "openai-batch")


class PlanError(EmgridError):
    """Snakemake could not build the DAG (bad config, missing input ...); the message carries snakemake's error."""


@dataclass(frozen=True)
class JobRecord:
    """One job of the dry-run DAG, as the child process reports it."""

    rule: str
    wildcards: dict[str, str]
    needrun: bool
    reasons: tuple[str, ...] = ()  # short labels (REASON_LABELS values); empty when the job need not run
    reason_text: str = ""
    estimate: dict[str, Any] = field(default_factory=dict)  # PLAN_ESTIMATE_KEYS, only for jobs that will run
    resources: dict[str, Any] = field(default_factory=dict)  # profile-applied, only for jobs that will run
    threads: int = 1
    local: bool = False  # declared in `localrules` (runs on the submit host under a cluster executor)
    log: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagDump:
    jobs: list[JobRecord]
    judge_config: dict  # the effective config's `judge` section (prices, model, backend)
    localrules: tuple[str, ...]
    seconds: float  # wall time of the child (snakemake start-up + DAG)
    before_you_run: tuple[str, ...] = ()  # the config check's warnings (emgrid.preflight)
    power: dict = field(default_factory=dict)  # {designs, analysis}: emgrid.power_plan


@dataclass
class Totals:
    """Sums over the jobs that will run (plus counts of the jobs that will not)."""

    jobs: int = 0
    to_run: int = 0
    complete: int = 0
    reasons: Counter = field(default_factory=Counter)  # primary reason -> jobs
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    answers: int = 0
    judge_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    batch_cost_usd: float = 0.0
    train_tokens: int = 0  # API finetunes: epochs x training-file tokens
    train_cost_usd: float = 0.0
    gen_prompt_tokens: int = 0  # API generation
    gen_completion_tokens: int = 0
    gen_cost_usd: float = 0.0
    train_unknown: int = 0  # API finetunes whose dataset size is unknown before it is built (sample.n null)
    no_runtime: int = 0  # jobs to run without a `runtime` resource (hours unknown, counted as 0)
    est_gpu_hours: float = 0.0  # measured-rate estimate (emgrid.throughput) of the GPU jobs that have one
    est_missing: int = 0  # GPU jobs to run that the calibration has no rate (or token count) for
    est_over: int = 0  # GPU jobs whose estimate exceeds their own upper bound (runtime x GPUs): flagged
    local: bool = False

    def add(self, other: "Totals") -> None:
        for name in (
            "jobs",
            "to_run",
            "complete",
            "gpu_hours",
            "cpu_hours",
            "answers",
            "judge_requests",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "batch_cost_usd",
            "train_tokens",
            "train_cost_usd",
            "gen_prompt_tokens",
            "gen_completion_tokens",
            "gen_cost_usd",
            "train_unknown",
            "no_runtime",
            "est_gpu_hours",
            "est_missing",
            "est_over",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.update(other.reasons)


@dataclass
class Plan:
    rules: dict[str, Totals]
    total: Totals
    cells: int  # (model, cell) pairs in the DAG
    cells_complete: int  # ... of which no job needs to run
    unpriced_models: list[str]
    warnings: list[str]
    localrules: tuple[str, ...]
    dag_seconds: float
    before_you_run: tuple[str, ...] = ()
    calibration: Calibration | None = None  # what est_gpu_hours were computed from
    device: str | None = None  # the device type estimated for
    power: list[dict] = field(default_factory=list)  # minimum detectable effects (emgrid.power_plan.power_rows)


# ----------------------------------------------------------------------------------------------- pure summary


def _gpus(resources: dict) -> int:
    """GPUs a job asks for: the `gpu` resource (the slurm plugin's --gpus), legacy `gpus`, or `gres=gpu[:type]:N`."""
    for key in ("gpu", "gpus", "nvidia_gpu"):
        v = resources.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return int(v)
    gres = resources.get("gres")
    if isinstance(gres, str):
        for part in gres.split(","):
            bits = part.strip().split(":")
            if bits[0] == "gpu":
                try:
                    return int(bits[-1]) if len(bits) > 1 else 1
                except ValueError:
                    return 1
    return 0


def _cpus(job: JobRecord) -> int:
    v = job.resources.get("cpus_per_task")
    if isinstance(v, (int, float)) and v > 0:
        return int(v)
    return max(int(job.threads or 1), 1)


def _price(prices: dict, model: str) -> dict[str, float] | None:
    """The model's row of the one price table (emgrid.prices), `prices` (the config's judge.prices) overriding it."""
    row = price_row(model, prices)
    return row if row is not None and "input" in row else None


def _primary(reasons: Sequence[str]) -> str:
    if not reasons:
        return "unknown"
    return min(reasons, key=lambda r: _REASON_ORDER.index(r) if r in _REASON_ORDER else len(_REASON_ORDER))


def job_totals(
    job: JobRecord,
    prices: dict,
    judge_defaults: dict | None = None,
    calibration: Calibration | None = None,
    device: str | None = None,
) -> tuple[Totals, str | None]:
    """Totals of one job; second value is the judge model when it has no price.

    `judge_defaults` (the config's judge section) supplies `model`/`backend` when the job's params do not;
    `calibration` and `device` give a GPU job its estimated GPU-hours (its tokens over the measured rate).
    """
    judge_defaults = judge_defaults or {}
    t = Totals(jobs=1, local=job.local)
    if not job.needrun:
        t.complete = 1
        return t, None
    t.to_run = 1
    t.reasons[_primary(job.reasons)] += 1
    runtime = job.resources.get("runtime")
    if isinstance(runtime, (int, float)):
        hours = float(runtime) / 60.0
        t.gpu_hours = hours * _gpus(job.resources)
        t.cpu_hours = hours * _cpus(job)
    else:
        t.no_runtime = 1
    if _gpus(job.resources):
        seconds = estimate_seconds(job.rule, job.estimate, calibration, device) if calibration and device else None
        if seconds is None:
            t.est_missing = 1
        else:
            t.est_gpu_hours = seconds / 3600 * _gpus(job.resources)
            t.est_over = int(not t.no_runtime and t.est_gpu_hours > t.gpu_hours)
    p = job.estimate
    t.answers = int(p.get("n_answers") or 0)
    t.judge_requests = int(p.get("n_requests") or 0)
    t.prompt_tokens = int(p.get("est_prompt_tokens") or 0)
    t.completion_tokens = int(p.get("est_completion_tokens") or 0)
    unpriced = None
    if t.prompt_tokens or t.completion_tokens:
        backend = str(p.get("backend") or judge_defaults.get("backend") or "openai")
        model = str(p.get("judge_model") or judge_defaults.get("model") or "")
        if backend in PAID_BACKENDS:
            price = _price(prices, model)
            if price is None:
                unpriced = model or "<judge model missing>"
            else:
                t.cost_usd = (t.prompt_tokens * price["input"] + t.completion_tokens * price["output"]) / 1e6
                t.batch_cost_usd = (
                    t.prompt_tokens * price["batch_input"] + t.completion_tokens * price["batch_output"]
                ) / 1e6
    return t, _api_model_totals(t, p, prices) or unpriced


def _api_model_totals(t: Totals, p: dict, prices: dict) -> str | None:
    """Training and generation tokens and dollars of an API-model job; returns its model when it has no price."""
    t.train_unknown = int("est_train_tokens" in p and p["est_train_tokens"] is None)
    t.train_tokens = int(p.get("est_train_tokens") or 0)
    t.gen_prompt_tokens = int(p.get("est_gen_prompt_tokens") or 0)
    t.gen_completion_tokens = int(p.get("est_gen_completion_tokens") or 0)
    if not (t.train_tokens or t.gen_prompt_tokens or t.gen_completion_tokens):
        return None
    model = str(p.get("api_model") or "")
    row = price_row(model, prices)
    if t.train_tokens:
        if row is None or "training" not in row:
            return f"{model} (training)"
        t.train_cost_usd = t.train_tokens * row["training"] / 1e6
    if t.gen_prompt_tokens or t.gen_completion_tokens:
        if row is None or "input" not in row:
            return model
        t.gen_cost_usd = (t.gen_prompt_tokens * row["input"] + t.gen_completion_tokens * row["output"]) / 1e6
    return None


def summarize(
    dump: DagDump, prices: dict | None = None, calibration: Calibration | None = None, device: str | None = None
) -> Plan:
    """Per-rule and total figures of a dry run. `prices` defaults to the workflow config's `judge.prices`;
    `device` (a GPU type) to the calibration's device with the most recorded runs."""
    if calibration is not None and device is None:
        device = next(iter(calibration.devices()), None)
    if prices is None:
        prices = dump.judge_config.get("prices") or {}
    rules: dict[str, Totals] = {}
    total = Totals()
    unpriced: set[str] = set()
    cells: dict[tuple[str, str], bool] = {}
    for job in dump.jobs:
        t, missing_price = job_totals(job, prices, dump.judge_config, calibration, device)
        if missing_price:
            unpriced.add(missing_price)
        rules.setdefault(job.rule, Totals(local=job.local)).add(t)
        total.add(t)
        if "model" in job.wildcards and "cell" in job.wildcards:
            key = (job.wildcards["model"], job.wildcards["cell"])
            cells[key] = cells.get(key, True) and not job.needrun
    warnings = []
    if unpriced:
        warnings.append(
            f"no price in judge.prices or emgrid.prices for model(s) {sorted(unpriced)}: their cost is not counted"
        )
    if total.train_unknown:
        warnings.append(
            f"{total.train_unknown} API finetune(s) of datasets with sample.n null: their training tokens "
            "are not counted until the datasets are built (snakemake --until build_dataset)"
        )
    warnings += uncounted_warnings(dump.jobs)
    if total.no_runtime:
        missing = sorted(r for r, t in rules.items() if t.no_runtime)
        warnings.append(f"{total.no_runtime} job(s) without a runtime resource (rules {missing}): hours counted as 0")
    return Plan(
        rules=rules,
        total=total,
        cells=len(cells),
        cells_complete=sum(cells.values()),
        unpriced_models=sorted(unpriced),
        warnings=warnings,
        localrules=dump.localrules,
        dag_seconds=dump.seconds,
        before_you_run=dump.before_you_run,
        calibration=calibration,
        device=device,
    )


#: Rules whose estimate counts a question set's judge requests (zero while its file is missing).
JUDGE_RULES = ("judge", "steering_judge")


def uncounted_warnings(jobs: Sequence[JobRecord]) -> list[str]:
    """What the totals leave out, said next to them: judge requests of question sets whose file is missing (the
    estimate counts none, so the judge cost is a lower bound) and the LLM requests of dataset builds (not estimated,
    hence not priced)."""
    to_run = [j for j in jobs if j.needrun]
    empty = sorted(
        {j.wildcards.get("qset", "?") for j in to_run if j.rule in JUDGE_RULES and j.estimate.get("n_requests") == 0}
    )
    out = []
    if empty:
        out.append(
            f"question set(s) {empty}: no question file yet, so their answers, judge requests and judge cost are not "
            "counted (totals are lower bounds; see 'before you run')"
        )
    llm = [j for j in to_run if j.rule == "build_dataset" and j.estimate.get("llm_model")]
    if llm:
        models = sorted({str(j.estimate["llm_model"]) for j in llm})
        out.append(
            f"{len(llm)} build_dataset job(s) ask an LLM (model(s) {models}) to write data: their requests and cost "
            "are not estimated (replies already in the LLM response cache cost nothing)"
        )
    return out


# ---------------------------------------------------------------------------------------- reading the DAG


def read_dag(snakemake_args: Sequence[str] = (), cwd: str | Path | None = None, python: str | None = None) -> DagDump:
    """Build the dry-run DAG of `snakemake <snakemake_args>` in a child process and return its job records.

    The arguments are the ones you would give `snakemake` for the real run (profile, configfile, targets ...), so the
    plan sees the same resources and rerun decisions. Raises PlanError with snakemake's message when it fails.
    """
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="emgrid-plan-") as tmp:
        out = Path(tmp) / "dag.json"
        cmd = [python, str(DAG_DUMP_SCRIPT), str(out), "--", *snakemake_args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            # snakemake prints its error (often after a long traceback) last; a config check lists every problem
            lines = (proc.stderr + proc.stdout).strip().splitlines()
            start = next((i for i, l in enumerate(lines) if "invalid config:" in l), max(len(lines) - 12, 0))
            tail = "\n".join(lines[start:])
            raise PlanError(f"snakemake dry run failed (args: {' '.join(snakemake_args) or '<none>'}):\n{tail}")
        raw = json.loads(out.read_text(encoding="utf-8"))
    jobs = [
        JobRecord(
            rule=j["rule"],
            wildcards=j["wildcards"],
            needrun=j["needrun"],
            reasons=tuple(j["reasons"]),
            reason_text=j["reason_text"],
            estimate=j["estimate"],
            resources=j["resources"],
            threads=j["threads"],
            local=j["local"],
            log=tuple(j["log"]),
        )
        for j in raw["jobs"]
    ]
    return DagDump(
        jobs=jobs,
        judge_config=raw["judge"],
        localrules=tuple(raw["localrules"]),
        seconds=seconds,
        before_you_run=tuple(raw.get("before_you_run", ())),
        power=raw.get("power") or {},
    )


def plan(
    snakemake_args: Sequence[str] = (),
    cwd: str | Path | None = None,
    prices: dict | None = None,
    device: str | None = None,
    target_mde: float | None = None,
    target_metric: str = "misaligned",
) -> Plan:
    """`read_dag` + `summarize`: the whole dry-run plan of a snakemake invocation, GPU-hours estimated from the runs
    recorded in the job logs under `cwd`'s results/logs, else the shipped calibration (emgrid.throughput); plus the
    minimum detectable trigger effect per model x question set (and the design reaching `target_mde`)."""
    cal = choose_calibration(cwd or ".")
    dump = read_dag(snakemake_args, cwd=cwd)
    result = summarize(dump, prices=prices, calibration=cal, device=device)
    result.power = power_for_plan(dump.power, cwd or ".", target_mde, target_metric)
    return result
