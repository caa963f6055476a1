# Validation, grid expansion and input functions. Every params function returns only plain values of its own
# cell (see emgrid.gridspec), so Snakemake's params trigger reruns exactly the cells a config edit touches.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

REPO = Path(workflow.basedir)
SRC = str(REPO.joinpath("src"))
if SRC not in sys.path:
    sys.path.insert(0, SRC)
# `--sdm conda`: envs/*.yaml install emgrid with `-e ${EMGRID_REPO}`. Conda runs pip in Snakemake's copy of the env
# file (under .snakemake/conda/ or --conda-prefix), where a relative path would point nowhere; pip expands this.
os.environ.update(EMGRID_REPO=str(REPO))

from emgrid import gridspec, preflight
from emgrid.errors import EmgridError
from emgrid.models import restore_manifest
from emgrid.steering import grid as steering_grid
from emgrid.steering.steer import STEER_RE, UNSTEERED
from emgrid.throughput_model import generation_plan, scoring_plan


def resolve_path(path):
    """Paths in the config are relative to the working directory, falling back to the repository."""
    p = Path(path)
    return str(p) if p.is_absolute() or p.exists() else str(REPO / p)


# The whole config, every cell, before any job: all problems at once, each naming its key path.
# Snakemake read the config files with a loader that keeps the last of two equal keys: preflight re-reads them.
FINDINGS = preflight.check(config, resolve_path=resolve_path, config_files=workflow.configfiles)
if FINDINGS.errors:
    raise WorkflowError(f"invalid config: {preflight.format_errors(FINDINGS.errors)}")
if FINDINGS.warnings and not workflow.remote_exec:
    logger.warning(preflight.format_warnings(FINDINGS.warnings))


wildcard_constraints:
    model=gridspec.MODEL_RE,
    cell=gridspec.CELL_RE,
    domain=gridspec.DOMAIN_RE,
    variant="plain|backdoor",
    seed=r"[0-9]+",
    qset=gridspec.QSET_RE,


CELLS = gridspec.cells(config)
JUDGE_MODEL = gridspec.judge_model_key(config)
# Models finetuned and queried through the OpenAI API get their own finetune/generate rules (no GPU).
API_MODELS = gridspec.api_models(config)
API_MODEL_RE = gridspec.models_re(API_MODELS)
LOCAL_MODEL_RE = gridspec.models_re([m for m in gridspec.all_model_specs(config) if m not in API_MODELS])
# hf judges run a model: a GPU job. openai-batch judges wait on the Batch API's window (up to 24 h): a local rule, so
# that no cluster allocation is held while they poll. openai judges: one core and one slot of the openai_calls cap.
JUDGE_ON_GPU = config["judge"]["backend"] == "hf"
JUDGE_LOCAL = config["judge"]["backend"] == "openai-batch"


def cell_of(wildcards):
    return gridspec.parse_cell(wildcards.model, wildcards.cell)


def model_spec_param(wildcards):
    return gridspec.model_spec(config, wildcards.model)


def dataset_param(wildcards):
    return gridspec.dataset_params(config, wildcards.domain, wildcards.variant, int(wildcards.seed))


def dataset_inputs(wildcards):
    """Local files a recipe reads: an edit to one of them rebuilds that dataset only."""
    return [resolve_path(p) for p in gridspec.recipe_files(config["domains"][wildcards.domain]["recipe"])]


def dataset_dir(cell):
    return f"results/datasets/{cell.domain}/{cell.variant}-s{cell.seed}"


def finetune_train_input(wildcards):
    return f"{dataset_dir(cell_of(wildcards))}/train.jsonl"


def finetune_param(wildcards):
    return gridspec.finetune_params(config, cell_of(wildcards))


def api_finetune_param(wildcards):
    return gridspec.api_finetune_params(config, cell_of(wildcards))


def question_file(wildcards):
    """The question file, or nothing while it is missing (preflight warned; the job then names the path)."""
    if gridspec.question_file_missing(config, wildcards.qset):
        return []
    # its mtime is ignored: the question_*_param digests decide what an edit of it reruns
    return ancient(gridspec.question_set(config, wildcards.qset)["path"])


def question_generate_param(wildcards):
    return gridspec.question_content(config, wildcards.qset, "generate")


def question_judge_param(wildcards):
    return gridspec.question_content(config, wildcards.qset, "judge")


def generate_inputs(wildcards):
    cell = cell_of(wildcards)
    inputs = {"manifest": f"results/models/{cell.model}/manifest.json", "questions": question_file(wildcards)}
    if not cell.is_base and cell.model in API_MODELS:
        inputs["finetune"] = f"results/cells/{cell.model}/{cell.id}/finetune.json"  # holds the finetuned model id
    elif not cell.is_base:
        inputs["adapter"] = f"results/cells/{cell.model}/{cell.id}/adapter"
    return inputs


def generate_param(wildcards):
    return gridspec.generate_params(config, cell_of(wildcards), wildcards.qset)


def judge_inputs(wildcards):
    inputs = {
        "answers": f"results/cells/{wildcards.model}/{wildcards.cell}/answers/{wildcards.qset}.jsonl",
        "questions": question_file(wildcards),
    }
    if JUDGE_MODEL is not None:
        inputs["judge_manifest"] = f"results/models/{JUDGE_MODEL}/manifest.json"
    return inputs


def judge_param(wildcards):
    return gridspec.judge_params(config)


def question_options_param(wildcards):
    return gridspec.question_options(config, wildcards.qset)


def all_judged(wildcards):
    return gridspec.all_judged(config)


def all_answers(wildcards):
    return gridspec.all_answers(config)


def answers_plan_param(wildcards):
    return gridspec.answers_plan(config, cell_of(wildcards), wildcards.qset)


def all_cards(wildcards):
    return [f"results/datasets/{d}/{v}-s{s}/card.json" for d, v, s in gridspec.datasets(config)]


def all_finetune_metrics(wildcards):
    return [f"results/cells/{c.model}/{c.id}/finetune.json" for c in CELLS if not c.is_base]


def analysis_param(wildcards):
    return gridspec.analysis_params(config)


def report_param(wildcards):
    return gridspec.report_params(config)


def report_domains_param(wildcards):
    return gridspec.report_domains(config)


def report_title_param(wildcards):
    return config["report"]["title"]


def model_finetune_metrics(wildcards):
    cells = [c for c in CELLS if not c.is_base and c.model == wildcards.model]
    return [f"results/cells/{c.model}/{c.id}/finetune.json" for c in cells]


def report_page_inputs(wildcards):
    """Named inputs of the report page: the names are the ones emgrid.report.page's sections read."""
    pairs = {"model": list(config["models"]), "qset": list(config["question_sets"])}
    plots = [p for pattern in rules.plots.output for p in expand(pattern, **pairs)]
    finetuned = sorted({c.model for c in CELLS if not c.is_base})
    return {
        "summary": "results/summary/summary.csv",
        "scores": "results/summary/scores.csv",
        **dict(rules.report_tables.output.items()),
        "plots": plots,
        "loss_curves": expand(rules.loss_curves.output.png, model=finetuned),
        "answers": expand(rules.answer_browser.output.html, **pairs),
        "headline": rules.aggregate.output.headline,
        "ranking_stats": rules.aggregate.output.ranking,
        "trigger_stats": rules.aggregate.output.trigger_effect,
        "transfer_contrast": rules.aggregate.output.transfer_contrast,
        "transfer_plots": expand(
            rules.transfer_plot.output.png, model=pairs["model"], qset=gridspec.probe_qsets(config)
        ),
        "cards": all_cards(wildcards),
        **analysis_page_inputs(pairs),
        "efficacy": efficacy_table_target(wildcards),
        **steering_page_inputs(),
    }


def plan_estimate(rule_name, wildcards):
    """Answers, judge requests and tokens of one job, for `emgrid plan` only (its DAG reader calls this).

    Not params: params are rerun triggers, and a better estimate must never rerun a judge or GPU job. Built files
    are read under the working directory, which snakemake has set to the run's folder (`--directory`, `workdir:`).
    """
    if rule_name == "build_dataset":  # which LLM it asks, if any: the plan says these requests are not priced
        return gridspec.dataset_llm_estimate(config, wildcards.domain)
    if rule_name == "finetune":  # tokens it will train on: the GPU-hours estimate (emgrid.throughput)
        return gridspec.finetune_estimate(config, cell_of(wildcards))
    if rule_name == "generate":
        cell = cell_of(wildcards)
        n = gridspec.count_answers(config, cell, wildcards.qset)
        return generation_plan(n, gridspec.generate_params(config, cell, wildcards.qset)["spec"])
    if rule_name == "judge":
        return gridspec.judge_estimate(config, cell_of(wildcards), wildcards.qset)
    if rule_name == "finetune_openai":  # trained tokens this job will pay for
        return gridspec.api_finetune_estimate(config, cell_of(wildcards))
    if rule_name == "generate_openai":  # prompt and completion tokens this job will pay for at most
        return gridspec.api_generate_estimate(config, cell_of(wildcards), wildcards.qset)
    if rule_name == "efficacy_generate":
        cell, domain = efficacy_cell(wildcards), wildcards.domain
        spec = gridspec.efficacy_generate_params(config, cell, domain)["spec"]
        return generation_plan(gridspec.efficacy_n_answers(config, cell, domain), spec)
    if rule_name == "efficacy_judge":
        return gridspec.efficacy_judge_estimate(config, efficacy_cell(wildcards), wildcards.domain)
    if rule_name in ("steering_generate", "steering_judge"):
        n_runs = len(STEERING_RUNS.get(cell_of(wildcards), []))
        return steering_grid.plan_estimate(config, rule_name, wildcards.model, wildcards.cell, n_runs)
    if rule_name == "steering_direction":  # replays the cell's judged answers of every question set
        cell = cell_of(wildcards)
        n = sum(gridspec.count_answers(config, cell, q) for q in config["question_sets"])
        spec = steering_grid.steering_spec(config)
        return scoring_plan(n, spec.batch_size, spec.dtype)
    if rule_name == "mia_features":  # scores the domain's held-out examples
        n = gridspec.resolve_recipe_sample(config, wildcards.domain)["heldout"]
        spec = gridspec.mia_spec(config)
        return scoring_plan(n, spec.batch_size, spec.dtype)
    return {}


def drop_stale_report():
    """After a failed run, and when a run starts: when the summary is gone (a failed or killed aggregation, a
    deleted file), a report page or report.zip left behind would show old numbers. Remove them; not the figures
    beside them, some of which derive from other results (steering, analyses) and all of which rerun with a new
    summary."""
    if not Path(gridspec.SUMMARY_CSV).exists():
        removed = gridspec.drop_report()
        if removed:
            logger.info(f"removed the report of a summary that is gone: {', '.join(removed)}")


def analysis_page_inputs(pairs):
    """The analyses' tables and figures, for the analyses that are switched on (names read by emgrid.report.page)."""
    out = {}
    if gridspec.mia_spec(config).enabled:
        out["mia_tests"] = rules.mia_analysis.output.tests
        out["mia_plots"] = expand(rules.mia_plot.output.png, model=gridspec.mia_models(config), qset=pairs["qset"])
    if gridspec.diversity_spec(config).enabled:
        out["diversity_domains"] = rules.diversity_analysis.output.domains
        out["diversity_tests"] = rules.diversity_analysis.output.tests
        out["diversity_plots"] = expand(rules.diversity_plot.output.png, **pairs)
        out["diversity_category_plot"] = rules.diversity_category_plot.output.png
    return out


def mia_features_param(wildcards):
    return gridspec.mia_feature_params(config, wildcards.domain)


def mia_heldout_input(wildcards):
    variant = gridspec.analysis_variant(config, gridspec.mia_spec(config), wildcards.domain)
    return f"results/datasets/{wildcards.domain}/{variant}-s{wildcards.seed}/heldout.jsonl"


def mia_analysis_param(wildcards):
    return gridspec.mia_analysis_params(config)


def all_mia_features(wildcards):
    return gridspec.all_mia_features(config)


def diversity_param(wildcards):
    return gridspec.diversity_params(config, wildcards.domain)


def diversity_input(wildcards):
    spec = gridspec.diversity_spec(config)
    variant = gridspec.analysis_variant(config, spec, wildcards.domain)
    return f"results/datasets/{wildcards.domain}/{variant}-s{wildcards.seed}/{spec.split}.jsonl"


def diversity_analysis_param(wildcards):
    return gridspec.diversity_analysis_params(config)


def all_diversity_scores(wildcards):
    return gridspec.all_diversity_scores(config)


EFFICACY_DOMAINS = gridspec.efficacy_domains(config)


def efficacy_cell(wildcards):
    cell = cell_of(wildcards)
    if wildcards.domain not in EFFICACY_DOMAINS or not (cell.is_base or cell.domain == wildcards.domain):
        raise WorkflowError(f"no efficacy evaluation of cell {cell.id} on domain {wildcards.domain}")
    return cell


def efficacy_generate_inputs(wildcards):
    cell = efficacy_cell(wildcards)
    d, v, s = gridspec.efficacy_dataset(config, cell, wildcards.domain)
    inputs = {
        "manifest": f"results/models/{cell.model}/manifest.json",
        "heldout": f"results/datasets/{d}/{v}-s{s}/heldout.jsonl",
    }
    if not cell.is_base:
        inputs["adapter"] = f"results/cells/{cell.model}/{cell.id}/adapter"
    return inputs


def efficacy_generate_param(wildcards):
    return gridspec.efficacy_generate_params(config, efficacy_cell(wildcards), wildcards.domain)


def efficacy_judge_inputs(wildcards):
    efficacy_cell(wildcards)
    inputs = {"answers": f"results/cells/{wildcards.model}/{wildcards.cell}/efficacy/{wildcards.domain}/answers.jsonl"}
    if JUDGE_MODEL is not None:
        inputs["judge_manifest"] = f"results/models/{JUDGE_MODEL}/manifest.json"
    return inputs


def efficacy_judge_param(wildcards):
    return gridspec.efficacy_judge_params(config, wildcards.domain)


def all_efficacy_inputs(wildcards):
    return gridspec.all_efficacy_inputs(config)


def efficacy_summary_param(wildcards):
    return gridspec.efficacy_summary_params(config)


def efficacy_table_target(wildcards):
    return ["results/summary/efficacy.csv"] if EFFICACY_DOMAINS else []


def aggregate_inputs(wildcards):
    """The judged files; plus the efficacy table when analysis.drop_untaken_cells filters the cell set."""
    # answers: to check that every answer has its judged rows
    inputs = {"judged": gridspec.all_judged(config), "answers": all_answers(wildcards)}
    if config["analysis"]["drop_untaken_cells"] and EFFICACY_DOMAINS:
        inputs["efficacy"] = "results/summary/efficacy.csv"
    return inputs


# --- steering: directions of source cells, steered runs on target cells (emgrid.steering.grid; docs/steering.md)

# {target cell: its steer ids}: each target's runs are one steering_generate job
STEERING_RUNS = steering_grid.runs_by_target(config)


def steering_direction_inputs(wildcards):
    """The cell's model and adapter, and its judged answers (replayed, not regenerated) of the question sets the
    direction reads (steering_grid.direction_qsets): re-judging any other set reruns no steering job."""
    cell = cell_of(wildcards)
    return {
        "manifest": f"results/models/{cell.model}/manifest.json",
        "adapter": f"results/cells/{cell.model}/{cell.id}/adapter",
        "judged": [gridspec.judged_path(cell, q) for q in steering_grid.direction_qsets(config)],
    }


def steering_direction_param(wildcards):
    return steering_grid.direction_params(config)


def steering_source_direction(wildcards):
    """The source's direction files of one steered run (none for the unsteered run)."""
    job = steering_grid.parse_steer(wildcards.steer)
    return {} if job.kind == UNSTEERED else steering_grid.direction_paths(wildcards.model, job.source)


def steering_generate_inputs(wildcards):
    """The target's model (and adapter), its question file, and the directions of every source steering it."""
    inputs = generate_inputs(wildcards)
    steers = STEERING_RUNS.get(cell_of(wildcards), [])
    paths = [steering_grid.direction_paths(wildcards.model, source) for source in steering_grid.target_sources(steers)]
    inputs["direction_json"] = [p["json"] for p in paths]
    inputs["direction_npz"] = [p["npz"] for p in paths]
    return inputs


def steering_generate_param(wildcards):
    cell = cell_of(wildcards)
    return steering_grid.generate_params(config, cell, STEERING_RUNS.get(cell, []))


def steering_generate_runtime(wildcards, attempt):
    """Minutes of one target's steering_generate job: grows with its runs' answers (and with each retry)."""
    cell = cell_of(wildcards)
    return attempt * steering_grid.generate_minutes(config, cell, len(STEERING_RUNS.get(cell, [])))


def steering_judge_inputs(wildcards):
    inputs = judge_inputs(wildcards)
    del inputs["answers"]  # steering_judge_answers
    direction = steering_source_direction(wildcards)
    if direction:
        inputs["direction"] = direction["json"]  # says whether the source had a direction (else: no answers)
    return inputs


def steering_judge_answers(wildcards):
    """The target's answers file, which holds this run's rows. Through the checkpoint, so that Snakemake rebuilds
    this job after the target's steering_generate has run; ancient, so that rewriting the file for another run
    reruns no judge: steering_answers_key_param says when this run's answers changed."""
    job = checkpoints.steering_generate.get(model=wildcards.model, cell=wildcards.cell, qset=wildcards.qset)
    return ancient(job.output.answers)


def steering_answers_key_param(wildcards):
    """This run's answer-cache key (everything its answers depend on) as its steering_generate job last wrote it:
    a param, so the judge reruns exactly when its run's answers changed (None before the first generate)."""
    path = steering_grid.runs_path(cell_of(wildcards), wildcards.qset)
    return steering_grid.read_run_key(path, wildcards.steer)


def steering_plan_param(wildcards):
    return steering_grid.answers_plan(config, cell_of(wildcards))


def steering_summary_inputs(wildcards):
    directions = steering_grid.sources(config)
    return {
        "judged": steering_grid.all_judged(config),
        "direction_json": [steering_grid.direction_paths(c.model, c.id)["json"] for c in directions],
        "direction_npz": [steering_grid.direction_paths(c.model, c.id)["npz"] for c in directions],
    }


def steering_summary_param(wildcards):
    return steering_grid.summary_params(config)


def steering_targets(wildcards):
    """The steering summary and its figures, when the analysis has sources (rule all, the report)."""
    if not steering_grid.summary_outputs(config):
        return []
    return [*steering_grid.summary_outputs(config), *rules.steering_plots.output]


def steering_page_inputs():
    if not steering_grid.summary_outputs(config):
        return {}
    return {
        "steering": rules.steering_summary.output.matrix,
        "steering_directions": rules.steering_summary.output.directions,
        "steering_plots": list(rules.steering_plots.output),
    }


# --- start-up: what a deleted cache or a killed run left behind, brought back in line before the DAG is built


def restore_model_caches():
    """Deleted model caches (resources/models/, results/models/) are rebuilt here, before the DAG exists, not by the
    prepare_model job: a job that has to run reruns every job downstream of it, here every finetune and generation
    of the model, although the weights are the same (their identity is the model's spec: emgrid.models.
    restore_manifest). A manifest is restored only for a model with results; a new model goes through its job."""
    cells = Path("results/cells")
    for model in gridspec.all_model_specs(config):
        has_results = (cells / model).is_dir() or (
            model == JUDGE_MODEL and next(cells.glob("*/*/judged/*.jsonl"), None) is not None
        )
        manifest = Path(f"results/models/{model}/manifest.json")
        if not has_results and not manifest.is_file():
            continue
        try:
            done = restore_manifest(
                gridspec.model_spec(config, model), manifest.parent, gridspec.model_cache_dir(config)
            )
        except EmgridError as e:
            logger.warning(f"models.{model}: could not rebuild its deleted cache ({e}); its jobs will say why")
            continue
        if done:
            logger.info(f"{done} (the same weights: nothing reruns for them)")


if not workflow.remote_exec:
    drop_stale_report()
    restore_model_caches()
    MISSING_RESULTS = preflight.missing_results(config)
    if MISSING_RESULTS:
        logger.warning(preflight.format_missing_results(MISSING_RESULTS))
