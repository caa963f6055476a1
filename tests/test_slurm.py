"""The workflow on a real SLURM cluster (the single-node one scripts/slurm/start-slurm.sh starts; `.ci/run` does).

Runs through `--profile workflow/profiles/slurm-ci`: partition `debug`, two (fake) GPUs, no slurmdbd. Checks that
every non-local rule went through sbatch and every GPU job got a GPU from SLURM, that results equal a local run's,
that a failing job is retried per the profile (with more memory) and reported with its log paths, and that an
impossible request fails at submission with SLURM's reason instead of hanging.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from emgrid.plan import read_dag
from tests.support.workflow_helpers import REPO, tiny_config, write_config

PROFILE_CI = REPO / "workflow" / "profiles" / "slurm-ci"
GPU_RULES = ("finetune", "generate", "judge")  # at least these go through sbatch with a GPU (judge: hf backend)
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def _cluster() -> str | None:
    """None when the CI cluster is reachable, else why the tests are skipped."""
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on PATH; start a cluster with scripts/slurm/start-slurm.sh"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %G %a"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld not reachable"
    if out.returncode != 0:
        return f"sinfo failed: slurmctld not reachable ({out.stderr.strip()[:200]})"
    if not any(line.startswith("debug") and "gpu" in line and " up" in line for line in out.stdout.splitlines()):
        return f"no partition 'debug' with a gpu GRES (as workflow/profiles/slurm-ci expects): {out.stdout.strip()}"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _need_cluster():
    """Skip with the reason; checked when the tests run, not at collection (sinfo can take 10 s to give up)."""
    why = _cluster()
    if why:
        pytest.skip(why)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # jobs find the venv's python
    return env


def _snakemake(workdir: Path, *args: str, timeout: int = 900) -> tuple[subprocess.CompletedProcess, float]:
    """snakemake under `timeout -s INT`: a plain TERM leaves snakemake "shutting down" forever (REPORT pitfall 10)."""
    cmd = ["timeout", "-s", "INT", "-k", "30", str(timeout), sys.executable, "-m", "snakemake", *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=_env())
    return proc, time.monotonic() - t0


def _fail_msg(proc) -> str:
    return f"rc={proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"


def _submissions(text: str) -> list[tuple[str, int, str]]:
    """(rule, SLURM job id, SLURM log) for every sbatch the run made; the rule comes from the plugin's log path."""
    out = []
    for jobid, log in SUBMITTED.findall(text):
        m = re.search(r"/slurm_logs/rule_([^/]+)/", log)
        out.append((m[1] if m else "?", int(jobid), log))
    return out


def _squeue(jobid: int) -> tuple[str, str, str]:
    """(state, min memory, GRES/TRES) of a finished job; visible for MinJobAge (3600 s on the CI cluster)."""
    out = subprocess.run(["scontrol", "show", "job", str(jobid)], capture_output=True, text=True, timeout=15).stdout
    state = re.search(r"JobState=(\S+)", out)
    mem = re.search(r"MinMemoryNode=(\S+)", out)
    tres = " ".join(re.findall(r"(?:TresPerJob|TresPerNode|TRES)=(\S+)", out))
    return (state[1] if state else "?", mem[1] if mem else "?", tres)


# --------------------------------------------------------------------------------------- the real workflow


def _grid() -> dict:
    """The tiny test grid cut to one domain, backdoor variant only: the base cell and one finetuned cell, enough
    for every stage to run (a SLURM job costs seconds of start-up and polling, so fewer cells keep CI fast). MIA and
    diversity are left out: their jobs ask SLURM for nothing that finetune, generate, judge and efficacy_generate do
    not (a GPU, a core, memory), and on the test node's two GPUs every GPU job waits for a free one (the tiny grid runs
    them locally, tests/test_workflow.py)."""
    config = tiny_config()
    first = next(iter(config["domains"]))
    config["domains"] = {first: {**config["domains"][first], "variants": ["backdoor"]}}
    config["analyses"] = {**config["analyses"], "mia": {"enabled": False}, "diversity": {"enabled": False}}
    return config


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("slurm_run")
    cfg = write_config(wd, _grid())
    proc, secs = _snakemake(
        wd,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(wd),
        "--configfile",
        str(cfg),
        "--profile",
        str(PROFILE_CI),
    )
    assert proc.returncode == 0, _fail_msg(proc)
    print(f"tiny grid on SLURM: {secs:.0f}s")
    return wd, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def local_run(tiny_grid_run):
    """The session's shared local run of the whole tiny grid: the SLURM grid's cells are among its cells, and a
    cell's answers and judged rows depend on its own params only (the rerun tests prove it), not on the others."""
    return tiny_grid_run[0]


def test_every_cluster_rule_went_through_sbatch_and_gpu_jobs_got_a_gpu(slurm_run):
    wd, text = slurm_run
    subs = _submissions(text)
    assert subs, "no sbatch submission in the log:\n" + text[-3000:]
    ids = {jid for _, jid, _ in subs}
    assert len(ids) == len(subs)
    # every job of the grid, with its local flag (forceall: the DAG of a finished run is otherwise empty)
    jobs = [
        j
        for j in read_dag(
            [
                "--snakefile",
                str(REPO / "Snakefile"),
                "--configfile",
                str(wd / "config.yaml"),
                "--profile",
                str(PROFILE_CI),
                "--forceall",
            ],
            cwd=wd,
        ).jobs
        if j.log
    ]
    submitted_rules = sorted(r for r, _, _ in subs)
    assert submitted_rules == sorted(j.rule for j in jobs if not j.local)
    for rule in GPU_RULES:
        assert rule in submitted_rules
    for job in jobs:
        log = (wd / job.log[0]).read_text()
        m = re.search(r"SLURM_JOB_ID=(\d+)", log)
        if job.local:  # localrules run in the snakemake process on the submit host
            assert m is None, f"{job.rule} is a localrule but ran in a SLURM job: {job.log[0]}"
            continue
        assert m and int(m[1]) in ids, f"{job.rule} {job.wildcards}: no SLURM job id of this run in {job.log[0]}"
        state, _, tres = _squeue(int(m[1]))
        assert state == "COMPLETED", (job.rule, m[1], state)
        if job.resources.get("gpu", 0):  # what the rule asks for (finetune, generate, MIA, hf judge, ...)
            # SLURM itself allocated the GPU GRES and exported the device to the job
            assert re.search(r"CUDA_VISIBLE_DEVICES=\d", log), f"{job.log[0]}: CUDA_VISIBLE_DEVICES not set by SLURM"
            assert "gpu" in tres, f"job {m[1]} ({job.rule}) has no GPU allocation: {tres}"
        else:
            assert "CUDA_VISIBLE_DEVICES" not in log, f"{job.rule} got a GPU it does not ask for"


# ------------------------------------------------------------------------- failures, with a stand-in workflow

# Rule names match the profile's set-resources, so the profile's own values (and growth with attempt) apply.
FAILING = textwrap.dedent("""
    rule all:
        input: "out/finetune.txt", "out/judge.txt"

    rule finetune:
        output: "out/finetune.txt"
        log: "logs/finetune.log"
        # slurm-ci gives finetune mem_mb "2000 * attempt": the first try fails, the retry (4000) succeeds
        shell: "echo mem={resources.mem_mb} job=$SLURM_JOB_ID >> {log}; test {resources.mem_mb} -gt 2000; echo ok > {output}"

    rule judge:
        output: "out/judge.txt"
        log: "logs/judge.log"
        shell: "echo failing on purpose job=$SLURM_JOB_ID >> {log}; exit 3"
""")


def test_failing_job_is_retried_with_more_memory_and_reported_with_its_logs(tmp_path):
    (tmp_path / "Snakefile").write_text(FAILING)
    # --keep-going: both rules run side by side, so the test takes two scheduling waves instead of four
    proc, secs = _snakemake(tmp_path, "--profile", str(PROFILE_CI), "--keep-going", timeout=400)
    text = proc.stdout + proc.stderr
    assert proc.returncode not in (124, 137), "timed out:\n" + _fail_msg(proc)
    assert proc.returncode != 0, _fail_msg(proc)
    subs = _submissions(text)
    by_rule = {r: [jid for rr, jid, _ in subs if rr == r] for r in ("finetune", "judge")}
    # retries: 1 in the profile -> each failing job is submitted twice, the retry with twice the memory
    assert len(by_rule["finetune"]) == 2 and len(by_rule["judge"]) == 2, subs
    first, retry = sorted(by_rule["finetune"])
    assert _squeue(first)[:2] == ("FAILED", "2000M") and _squeue(retry)[:2] == ("COMPLETED", "4000M")
    assert (tmp_path / "out/finetune.txt").read_text() == "ok\n"
    assert [_squeue(j)[0] for j in by_rule["judge"]] == ["FAILED", "FAILED"]
    # the error names the rule's log and the SLURM log of the failed job, and shows their content
    last = max(by_rule["judge"])
    slurm_log = next(log for r, jid, log in subs if jid == last)
    assert "Error in rule judge:" in text
    assert re.search(rf"log: logs/judge\.log, {re.escape(slurm_log)} \(check log file\(s\) for error details\)", text)
    assert f"failing on purpose job={last}" in text
    assert Path(slurm_log).is_file()


def test_impossible_request_fails_fast_with_slurms_reason(tmp_path):
    (tmp_path / "Snakefile").write_text(FAILING)
    # 64 CPUs on a 2-CPU node: EnforcePartLimits=ALL makes sbatch refuse instead of queueing it forever
    proc, secs = _snakemake(
        tmp_path,
        "out/judge.txt",
        "--profile",
        str(PROFILE_CI),
        "--set-resources",
        "judge:cpus_per_task=64",
        timeout=180,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode not in (124, 137), f"hung until the timeout ({secs:.0f}s):\n{text[-3000:]}"
    assert proc.returncode != 0
    assert "More processors requested than permitted" in text, text[-3000:]
    assert secs < 90, f"took {secs:.0f}s to fail"


# Last in the file: the shared local run of the tiny grid is built by the other xdist worker while this one runs the
# SLURM grid and the failure tests (asked for first, this test waited for it idle).
def test_slurm_results_equal_a_local_run(slurm_run, local_run):
    wd, _ = slurm_run
    answers = sorted(p.relative_to(wd) for p in (wd / "results/cells").glob("*/*/answers/*.jsonl"))
    assert len(answers) == 2 * len(_grid()["question_sets"])
    for rel in answers:
        assert (wd / rel).read_bytes() == (local_run / rel).read_bytes(), f"answers differ: {rel}"
        jrel = Path(str(rel).replace("/answers/", "/judged/"))
        # exact floats: the hf judge scores each prompt alone, so what a concurrent job had cached changes nothing
        # (only the `cached` flag, which says which job paid)
        a, b = (
            [{**json.loads(x), "cached": None} for x in (d / jrel).read_text().splitlines()] for d in (wd, local_run)
        )
        assert a == b, f"judged rows differ: {jrel}"
    slurm_rows = (wd / "results/summary/summary.csv").read_text().splitlines()
    cells = {tuple(r.split(",")[:2]) for r in slurm_rows[1:]}
    local_rows = (local_run / "results/summary/summary.csv").read_text().splitlines()
    assert slurm_rows == local_rows[:1] + [r for r in local_rows[1:] if tuple(r.split(",")[:2]) in cells]
    assert (wd / "results/report/report.html").is_file()
