"""emgrid.plan: dry-run figures on a small grid, checked against values computed by hand.

The workflow here is a stand-in with the real workflow's rule names, resources and `plan_estimate` hook (shell rules
that only write files), so the numbers depend on nothing but the planner and snakemake's rerun logic.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emgrid import cli
from emgrid.errors import ConfigError
from emgrid.stats.power import DEFAULT_COMPONENTS, mde
from emgrid.plan import DagDump, JobRecord, PlanError, plan, read_dag, summarize
from emgrid.plan_format import format_table, plan_to_json

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow" / "profiles"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

SNAKEFILE = textwrap.dedent('''
    configfile: "config.yaml"
    localrules: all, aggregate, report, prepare_model

    QSETS = config["question_sets"]
    CELLS = ["base"] + [f"{d}-{v}-s{s}" for d in config["domains"] for v in config["variants"] for s in config["seeds"]]
    J = config["judge"]

    def n_answers(w):
        q = QSETS[w.qset]
        return q["questions"] * q["paraphrases"] * q["samples"] * 2   # both conditions

    def n_requests(w):
        return n_answers(w) * len(J["metrics"])

    def plan_estimate(rule, w):
        """What `emgrid plan` counts; a function, not params, so that editing it reruns nothing."""
        if rule == "generate":
            return {"n_answers": n_answers(w)}
        if rule == "judge":
            return {"n_requests": n_requests(w), "judge_model": J["model"], "backend": J["backend"],
                    "est_prompt_tokens": n_requests(w) * J["prompt_tokens"],
                    "est_completion_tokens": n_requests(w) * J["completion_tokens"]}
        return {}

    rule all:
        input: "results/report/report.html"

    rule prepare_model:
        output: "results/models/{model}/manifest.json"
        shell: "echo {wildcards.model} > {output}"

    rule build_dataset:
        output: "results/datasets/{domain}/{variant}-s{seed}/train.jsonl"
        params: recipe=lambda w: config["recipe"]
        shell: "echo {params.recipe} > {output}"

    def cell_dataset(w):
        d, v, s = w.cell.rsplit("-", 2)
        return f"results/datasets/{d}/{v}-{s}/train.jsonl"

    rule finetune:
        input: m="results/models/{model}/manifest.json", d=cell_dataset
        output: "results/cells/{model}/{cell}/finetune.json"
        wildcard_constraints: cell="[a-z0-9_]+-(plain|backdoor)-s[0-9]+"
        shell: "echo ft > {output}"

    rule generate:
        input:
            m="results/models/{model}/manifest.json",
            a=lambda w: [] if w.cell == "base" else f"results/cells/{w.model}/{w.cell}/finetune.json"
        output: "results/cells/{model}/{cell}/answers/{qset}.jsonl"
        params: gen=lambda w: {"temperature": 1.0}
        log: "results/logs/generate/{model}/{cell}/{qset}.log"
        shell: "echo gen > {output}; echo log > {log}"

    rule judge:
        input: "results/cells/{model}/{cell}/answers/{qset}.jsonl"
        output: "results/cells/{model}/{cell}/judged/{qset}.jsonl"
        params: model=J["model"]
        shell: "echo JUDGE > {output}"

    rule aggregate:
        input: expand("results/cells/{model}/{cell}/judged/{qset}.jsonl", model=config["models"], cell=CELLS, qset=QSETS)
        output: "results/summary/summary.csv"
        shell: "cat {input} > {output}"

    rule report:
        input: "results/summary/summary.csv"
        output: "results/report/report.html"
        shell: "cp {input} {output}"
''')

CONFIG = textwrap.dedent("""
    models: [m1]
    domains: [d1, d2]
    variants: [plain, backdoor]
    seeds: [0]
    recipe: r1
    question_sets:
      main: {questions: 4, paraphrases: 1, samples: 5}
      pre: {questions: 2, paraphrases: 2, samples: 3}
    judge:
      model: gpt-4o
      backend: openai
      metrics: [aligned, coherent]
      prompt_tokens: 300
      completion_tokens: 1
      prices: {gpt-4o: {input: 2.5, output: 10.0, batch_input: 1.25, batch_output: 5.0}}
""")

# The profile the numbers below are computed for (local-style: no executor, so it never needs a cluster).
PROFILE = textwrap.dedent("""
    cores: 2
    default-resources: {mem_mb: 1000, runtime: 10}
    set-resources:
      finetune: {gpu: 1, runtime: "60 * attempt", cpus_per_task: 4, mem_mb: "16000 * attempt"}
      generate: {gpu: 1, runtime: 30, cpus_per_task: 2}
      judge: {openai_calls: 1, runtime: 20}
""")

# Hand-computed for CONFIG + PROFILE:
#  cells: base + 2 domains x 2 variants x 1 seed = 5; datasets 4; finetunes 4; generate/judge 5 cells x 2 qsets = 10
#  answers per cell: main 4*1*5*2 = 40, pre 2*2*3*2 = 24 -> 64; 5 cells -> 320; judge requests 2 metrics -> 640
#  GPU-h: finetune 4 x 1 h x 1 GPU + generate 10 x 0.5 h = 9
#  CPU-h: finetune 4 x 1 h x 4 + generate 10 x 0.5 h x 2 + judge 10 x 1/3 h x 1 + 8 other jobs x 1/6 h (default 10 min)
#         = 16 + 10 + 10/3 + 4/3 = 30.6667
#  tokens: 640 x 300 = 192000 prompt, 640 completion
#  cost: 192000 * 2.5e-6 + 640 * 10e-6 = 0.4864; batch: 192000 * 1.25e-6 + 640 * 5e-6 = 0.2432
EXPECT = {
    "jobs": 32,
    "finetune": 4,
    "generate": 10,
    "judge": 10,
    "build_dataset": 4,
    "gpu_hours": 9.0,
    "cpu_hours": 16 + 10 + 10 / 3 + 8 / 6,
    "answers": 320,
    "judge_requests": 640,
    "prompt_tokens": 192000,
    "completion_tokens": 640,
    "cost_usd": 0.4864,
    "batch_cost_usd": 0.2432,
}


@pytest.fixture
def wf(tmp_path: Path) -> Path:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "config.yaml").write_text(PROFILE)
    return tmp_path


def _run_workflow(wf: Path) -> None:
    subprocess.run([SNAKEMAKE, "--profile", "prof", "-q", "all"], cwd=wf, check=True, capture_output=True)


@pytest.mark.slow  # Snakemake reads the DAG
def test_fresh_grid_matches_hand_computed_figures(wf):
    p = plan(["--profile", "prof"], cwd=wf)
    t = p.total
    assert t.jobs == t.to_run == EXPECT["jobs"] and t.complete == 0
    for rule in ("finetune", "generate", "judge", "build_dataset"):
        assert p.rules[rule].to_run == EXPECT[rule]
        assert p.rules[rule].reasons == {"new output": EXPECT[rule]}
    assert t.gpu_hours == pytest.approx(EXPECT["gpu_hours"])
    assert p.rules["finetune"].gpu_hours == pytest.approx(4.0)
    assert t.cpu_hours == pytest.approx(EXPECT["cpu_hours"])
    assert t.answers == EXPECT["answers"] and p.rules["generate"].answers == EXPECT["answers"]
    assert t.judge_requests == EXPECT["judge_requests"]
    assert (t.prompt_tokens, t.completion_tokens) == (EXPECT["prompt_tokens"], EXPECT["completion_tokens"])
    assert t.cost_usd == pytest.approx(EXPECT["cost_usd"]) and t.batch_cost_usd == pytest.approx(
        EXPECT["batch_cost_usd"]
    )
    assert (p.cells, p.cells_complete) == (5, 0)
    assert set(p.localrules) == {"all", "aggregate", "report", "prepare_model"}
    assert p.warnings == []
    text = format_table(p)
    assert "finetune" in text and "$0.49 standard API, $0.24 batch API" in text and "cells complete: 0 of 5" in text
    js = json.loads(json.dumps(plan_to_json(p)))
    assert js["total"]["to_run"] == 32 and js["rules"]["judge"]["judge_requests"] == 640


@pytest.mark.slow  # runs the toy workflow
def test_rerun_reasons_after_a_run(wf):
    _run_workflow(wf)
    done = plan(["--profile", "prof"], cwd=wf)
    assert done.total.to_run == 0 and done.total.complete == 32 and (done.cells, done.cells_complete) == (5, 5)
    assert done.total.gpu_hours == 0 and done.total.cost_usd == 0

    # a changed param of the datasets reruns them and everything downstream of a finetune, not the base cell
    p = plan(["--profile", "prof", "--config", "recipe=r2"], cwd=wf)
    assert p.rules["build_dataset"].reasons == {"params changed": 4}
    assert p.rules["finetune"].reasons == {"upstream rerun": 4}
    assert p.rules["generate"].to_run == 8 and p.rules["generate"].complete == 2
    assert p.rules["prepare_model"].to_run == 0
    assert (p.cells, p.cells_complete) == (5, 1)
    assert p.total.answers == 4 * 64 and p.total.gpu_hours == pytest.approx(4 + 8 * 0.5)

    # changed code of one rule, and one answer file with new content (newer than its judged file)
    snakefile = wf / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace("echo JUDGE", "echo JUDGE2"))
    (wf / "results/cells/m1/base/answers/main.jsonl").write_text("other answers\n")
    p = plan(["--profile", "prof"], cwd=wf)
    assert p.rules["judge"].to_run == 10
    # snakemake checks provenance (code, params) only for jobs that newer input does not already rerun
    assert p.rules["judge"].reasons == {"code changed": 9, "input newer (mtime)": 1}
    recs = [j for j in read_dag(["--profile", "prof"], cwd=wf).jobs if j.rule == "judge" and j.needrun]
    base_main = next(j for j in recs if j.wildcards == {"model": "m1", "cell": "base", "qset": "main"})
    assert base_main.reasons == ("input newer (mtime)",)
    assert "Updated input files" in base_main.reason_text


def _real_dag(tmp_path, profile: str, **judge) -> dict[str, JobRecord]:
    """The real workflow's tiny grid under a shipped profile, every job forced: one record per rule."""
    from tests.support.workflow_helpers import tiny_config, write_config

    config = tiny_config()
    config["judge"].update(judge)
    cfg = write_config(tmp_path, config, f"{profile}-{'-'.join(judge.values()) or 'hf'}.yaml")
    dump = read_dag(
        [
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(cfg),
            "--profile",
            str(PROFILES / profile),
            "--forceall",
        ],
        cwd=tmp_path,
    )
    return {j.rule: j for j in dump.jobs}


@pytest.mark.slow  # Snakemake reads the DAG
def test_repository_profiles_parse_and_rules_carry_the_sizes(tmp_path):
    """The shipped profiles load in snakemake 9; the sizes come from the rules (attempt-dependent ones evaluate);
    only the test cluster's profile shrinks them, for its one small node."""
    recs = {name: _real_dag(tmp_path, name) for name in ("default", "slurm", "slurm-ci")}
    for name, jobs in recs.items():
        for rule in ("finetune", "generate", "judge"):  # the tiny grid judges with the hf backend: a GPU job
            assert jobs[rule].resources["gpu"] == 1 and not jobs[rule].local, (name, rule)
    slurm = recs["slurm"]
    assert (slurm["finetune"].resources["runtime"], slurm["finetune"].threads) == (240, 8)  # "240 * attempt"
    assert "cpus_per_task" not in slurm["finetune"].resources  # threads become --cpus-per-task
    assert (slurm["generate"].threads, slurm["judge"].threads) == (4, 4)
    assert recs["slurm-ci"]["generate"].resources["runtime"] == 15 and recs["slurm-ci"]["finetune"].threads == 1
    assert recs["default"]["generate"].resources["runtime"] == 120


@pytest.mark.slow  # Snakemake reads the DAG
def test_judge_resources_follow_the_backend(tmp_path):
    """An hf judge job once got no GPU; an openai-batch judge job held a cluster allocation while it polled a 24 h
    window. Now: hf -> a GPU job; openai -> one core, one openai_calls slot; openai-batch -> a local rule."""
    hf = _real_dag(tmp_path, "slurm")["judge"]
    api = _real_dag(tmp_path, "slurm", backend="openai", model="gpt-4o-mini")["judge"]
    batch = _real_dag(tmp_path, "slurm", backend="openai-batch", model="gpt-4o-mini")["judge"]
    assert (hf.resources["gpu"], hf.local) == (1, False)
    assert (api.resources["gpu"], api.threads, api.local) == (0, 1, False)
    assert batch.local and batch.resources["gpu"] == 0


@pytest.mark.slow  # Snakemake reads the DAG
def test_real_workflow_tiny_grid(tmp_path):
    """The real Snakefile on the tiny test grid, judged through the API (so it has a price), default profile.

    By hand: 2 domains x 2 variants x 1 seed = 4 finetuned cells + base = 5 cells; question set `demo` has 5
    questions x 1 paraphrase, samples_per_paraphrase 1 (tiny.yaml), 2 conditions -> 10 answers per cell, 50 in all;
    2 metrics (aligned, coherent) -> 100 judge requests; logprob mode -> 1 completion token per request.
    Efficacy: 4 finetuned cells on their domain + base on 2 domains = 6 generate jobs x 4 held-out prompts x 1 sample
    x 2 conditions = 48 answers; wrong_facts is judge-scored (tiny.yaml): 3 jobs x 8 = 24 judge requests.
    GPU-hours (the rules' runtimes): finetune 4 x 240 min + generate 5 x 120 min + MIA features (1 model x 2 domains x
    1 seed) 2 x 60 min + efficacy_generate 6 x 60 min = 34 (an API judge has no GPU).
    """
    from tests.support.workflow_helpers import TINY_GRID_JOBS, tiny_config, write_config

    config = tiny_config()
    config["judge"] = {
        "backend": "openai",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
        "prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.60, "batch_input": 0.075, "batch_output": 0.30}},
    }
    cfg = write_config(tmp_path, config)
    p = plan(
        [
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(cfg),
            "--profile",
            str(PROFILES / "default"),
        ],
        cwd=tmp_path,
    )
    counts = {r: t.to_run for r, t in p.rules.items()}
    assert counts == {**TINY_GRID_JOBS, "all": 1}
    assert (p.cells, p.cells_complete) == (5, 0)
    assert p.total.gpu_hours == pytest.approx(34.0)
    assert p.rules["efficacy_generate"].answers == 48 and p.rules["efficacy_judge"].judge_requests == 24
    assert p.total.answers == 98 and p.total.judge_requests == 124
    assert p.total.completion_tokens == 124 and p.total.prompt_tokens > 124 * 8  # each prompt holds an answer
    assert p.total.cost_usd == pytest.approx((p.total.prompt_tokens * 0.15 + 124 * 0.60) / 1e6)
    assert p.total.batch_cost_usd == pytest.approx(p.total.cost_usd / 2)
    assert p.warnings == []
    # power: 1 seed x 5 questions x 1 answer per pair and condition, no judged results yet -> the stated defaults
    assert [(r["qset"], r["seeds"], r["questions"], r["answers"], r["metric"], r["source"]) for r in p.power] == [
        ("demo", 1, 5, 1, "misaligned", "defaults"),
        ("demo", 1, 5, 1, "aligned", "defaults"),
    ]
    assert p.power[1]["mde"] == pytest.approx(mde(DEFAULT_COMPONENTS["aligned"], 5, 1))


def _rec(rule, needrun=True, **kw) -> JobRecord:
    return JobRecord(
        rule=rule, wildcards=kw.pop("wildcards", {}), needrun=needrun, reasons=kw.pop("reasons", ("new output",)), **kw
    )


def test_summarize_units_and_price_rules():
    jobs = [
        _rec("finetune", resources={"runtime": 90, "gres": "gpu:a100:2"}, threads=3),  # 1.5 h x 2 GPUs, 3 threads
        _rec("generate", resources={"runtime": 60, "gpu": 1, "cpus_per_task": 5}, estimate={"n_answers": 7}),
        _rec(
            "judge",
            resources={},
            estimate={
                "n_requests": 10,
                "judge_model": "m-nobatch",
                "backend": "openai",
                "est_prompt_tokens": 1_000_000,
                "est_completion_tokens": 100_000,
            },
        ),
        _rec(
            "judge",
            resources={"runtime": 6},
            estimate={
                "n_requests": 4,
                "judge_model": "local-judge",
                "backend": "hf",
                "est_prompt_tokens": 50,
                "est_completion_tokens": 5,
            },
        ),
        _rec(
            "judge",
            resources={"runtime": 6},
            estimate={
                "n_requests": 1,
                "judge_model": "unknown-model",
                "est_prompt_tokens": 10,
                "est_completion_tokens": 1,
            },
        ),
        _rec("report", needrun=False, reasons=()),
    ]
    prices = {"m-nobatch": {"input": 2.0, "output": 8.0}}  # no batch price
    p = summarize(DagDump(jobs=jobs, judge_config={}, localrules=("report",), seconds=0.0), prices=prices)
    assert p.rules["finetune"].gpu_hours == pytest.approx(3.0) and p.rules["finetune"].cpu_hours == pytest.approx(4.5)
    assert p.rules["generate"].cpu_hours == pytest.approx(5.0) and p.total.answers == 7
    assert p.total.judge_requests == 15
    assert p.total.cost_usd == pytest.approx(2.0 + 0.8)  # hf judge costs nothing, unknown model is not counted
    assert p.total.batch_cost_usd == pytest.approx(1.4)  # no batch price: half (the Batch API rule, emgrid.prices)
    assert p.unpriced_models == ["unknown-model"]
    assert p.total.no_runtime == 1 and len(p.warnings) == 2
    assert p.rules["report"].complete == 1 and p.rules["report"].to_run == 0
    with pytest.raises(ConfigError, match="judge.prices.m-nobatch: needs .input."):
        summarize(
            DagDump(jobs=[jobs[2]], judge_config={}, localrules=(), seconds=0),
            prices={"m-nobatch": {"batch_input": 1.0}},
        )


def test_list_price_when_the_config_has_none():
    """The schema's default judge (gpt-4o-mini, prices {}) was planned at $0.00; the judge itself used list prices."""
    from emgrid.judge.cost import cost_usd
    from emgrid.judge.spec import JudgeSpec

    job = _rec(
        "judge", resources={"runtime": 6}, estimate={"est_prompt_tokens": 1_000_000, "est_completion_tokens": 1_000_000}
    )
    judge = {"model": "gpt-4o-mini", "backend": "openai", "prices": {}}
    p = summarize(DagDump(jobs=[job], judge_config=judge, localrules=(), seconds=0.0))
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    spec = JudgeSpec(model="gpt-4o-mini")
    assert p.total.cost_usd == pytest.approx(0.15 + 0.60) == pytest.approx(cost_usd(usage, spec))
    assert p.total.batch_cost_usd == pytest.approx(0.075 + 0.30) == pytest.approx(cost_usd(usage, spec, batch=True))
    assert p.unpriced_models == [] and p.warnings == []


@pytest.mark.slow  # runs the toy workflow
def test_cli_json_and_errors(wf, monkeypatch, capsys):
    monkeypatch.chdir(wf)
    assert cli.main(["plan", "--json", "--profile", "prof", "--config", "recipe=r9"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["to_run"] == EXPECT["jobs"] and out["snakemake_args"][:2] == ["--profile", "prof"]
    assert out["total"]["cost_usd"] == pytest.approx(EXPECT["cost_usd"])

    assert cli.main(["plan", "--configfile", "missing.yaml"]) == 1
    assert "--configfile missing.yaml: no such file" in capsys.readouterr().err
    # snakemake's own error reaches the user
    (wf / "Snakefile").write_text('rule a:\n    input: "no/such/file"\n    output: "x"\n    shell: "touch x"\n')
    with pytest.raises(PlanError, match="no/such/file"):
        read_dag(["--profile", "prof"], cwd=wf)


def test_default_profile_is_added_only_without_profile(tmp_path):
    (tmp_path / "workflow/profiles/default").mkdir(parents=True)
    assert cli.plan_snakemake_args(["c.yaml"], ["-R", "x"], cwd=tmp_path) == [
        "--profile",
        "workflow/profiles/default",
        "--configfile",
        "c.yaml",
        "-R",
        "x",
    ]
    assert cli.plan_snakemake_args([], ["--profile=p"], cwd=tmp_path) == ["--profile=p"]
    assert cli.plan_snakemake_args([], [], cwd=tmp_path / "nowhere") == []


def test_the_plan_says_what_its_totals_leave_out():
    """A question set whose file is missing counts no judge request, and dataset builds that ask an LLM are not
    priced: both said as warnings next to the totals, naming the set and the model (issue 22 item 9)."""
    jobs = [
        _rec("judge", wildcards={"model": "m", "cell": "base", "qset": "core"}, estimate={"n_requests": 10}),
        _rec("judge", wildcards={"model": "m", "cell": "base", "qset": "study"}, estimate={"n_requests": 0}),
        _rec("judge", needrun=False, wildcards={"model": "m", "cell": "x", "qset": "done"}, estimate={"n_requests": 0}),
        _rec("build_dataset", wildcards={"domain": "code"}, estimate={"llm_model": "gpt-4o-mini"}),
        _rec("build_dataset", wildcards={"domain": "facts"}, estimate={}),
    ]
    warnings = summarize(DagDump(jobs=jobs, judge_config={}, localrules=(), seconds=0.0), prices={}).warnings
    assert any(w.startswith("question set(s) ['study']: no question file yet") for w in warnings), warnings
    assert any(w.startswith("1 build_dataset job(s) ask an LLM (model(s) ['gpt-4o-mini'])") for w in warnings)


def test_dataset_llm_estimate_names_the_llm_of_llm_recipes_only():
    from emgrid import estimates
    from tests.support.workflow_helpers import tiny_config

    config = tiny_config()
    assert estimates.dataset_llm_estimate(config, "wrong_facts") == {}
    config["llm"] = {"model": "gpt-4o-mini"}
    config["domains"]["wrong_facts"]["recipe"]["transform"] = [{"kind": "llm_answer", "target": "aligned"}]
    assert estimates.dataset_llm_estimate(config, "wrong_facts") == {"llm_model": "gpt-4o-mini"}
