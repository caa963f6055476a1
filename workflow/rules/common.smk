# The config check, the grid object and the adapters that need Snakemake's own objects (`rules`, `checkpoints`,
# `expand`, `logger`). Every params method of `G` (emgrid.gridspec.Grid) returns only plain values of its own cell,
# so Snakemake's params trigger reruns exactly the cells a config edit touches.
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

from emgrid import grid, gridspec, layout, preflight
from emgrid.errors import EmgridError
from emgrid.gridspec import Grid
from emgrid.jobparams import model_cache_dir, model_spec
from emgrid.missing_results import format_missing_results, missing_results
from emgrid.models import restore_manifest
from emgrid.steering.steer import STEER_RE


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
    model=grid.MODEL_RE,
    cell=grid.CELL_RE,
    domain=grid.DOMAIN_RE,
    variant="plain|backdoor",
    seed=r"[0-9]+",
    qset=grid.QSET_RE,


G = Grid(config, resolve_path=resolve_path, ancient=ancient)
# `emgrid plan`'s DAG reader calls the workflow's `plan_estimate(rule_name, wildcards)` (emgrid.plan.PLAN_HOOK).
plan_estimate = G.plan_estimate


def report_page_inputs(wildcards):
    """Named inputs of the report page: the names are the ones emgrid.report.page's sections read."""
    pairs = {"model": list(config["models"]), "qset": list(config["question_sets"])}
    plots = [p for pattern in rules.plots.output for p in expand(pattern, **pairs)]
    finetuned = sorted({c.model for c in G.cells if not c.is_base})
    return {
        "summary": rules.aggregate.output.summary,
        "scores": rules.aggregate.output.scores,
        **dict(rules.report_tables.output.items()),
        "plots": plots,
        "loss_curves": expand(rules.loss_curves.output.png, model=finetuned),
        "answers": expand(rules.answer_browser.output.html, **pairs),
        "headline": rules.aggregate.output.headline,
        "ranking_stats": rules.aggregate.output.ranking,
        "trigger_stats": rules.aggregate.output.trigger_effect,
        "transfer_contrast": rules.aggregate.output.transfer_contrast,
        "transfer_plots": expand(rules.transfer_plot.output.png, model=pairs["model"], qset=G.probe_qsets()),
        "cards": G.all_cards(),
        **analysis_page_inputs(pairs),
        "efficacy": G.efficacy_table(),
        **steering_page_inputs(),
    }


def analysis_page_inputs(pairs):
    """The analyses' tables and figures, for the analyses that are switched on (names read by emgrid.report.page)."""
    out = {}
    if G.mia.enabled:
        out["mia_tests"] = rules.mia_analysis.output.tests
        out["mia_plots"] = expand(rules.mia_plot.output.png, model=G.mia_models(), qset=pairs["qset"])
    if G.diversity.enabled:
        out["diversity_domains"] = rules.diversity_analysis.output.domains
        out["diversity_tests"] = rules.diversity_analysis.output.tests
        out["diversity_plots"] = expand(rules.diversity_plot.output.png, **pairs)
        out["diversity_category_plot"] = rules.diversity_category_plot.output.png
    return out


def steering_judge_answers(wildcards):
    """The target's answers file, which holds this run's rows. Through the checkpoint, so that Snakemake rebuilds
    this job after the target's steering_generate has run; ancient, so that rewriting the file for another run
    reruns no judge: G.steering_answers_key says when this run's answers changed."""
    job = checkpoints.steering_generate.get(model=wildcards.model, cell=wildcards.cell, qset=wildcards.qset)
    return ancient(job.output.answers)


def steering_targets(wildcards):
    """The steering summary and its figures, when the analysis has sources (rule all, the report)."""
    if not G.steering_outputs():
        return []
    return [*G.steering_outputs(), *rules.steering_plots.output]


def steering_page_inputs():
    if not G.steering_outputs():
        return {}
    return {
        "steering": rules.steering_summary.output.matrix,
        "steering_directions": rules.steering_summary.output.directions,
        "steering_plots": list(rules.steering_plots.output),
    }


# --- start-up: what a deleted cache or a killed run left behind, brought back in line before the DAG is built


def drop_stale_report():
    """After a failed run, and when a run starts: when the summary is gone (a failed or killed aggregation, a
    deleted file), a report page or report.zip left behind would show old numbers. Remove them; not the figures
    beside them, some of which derive from other results (steering, analyses) and all of which rerun with a new
    summary."""
    if not Path(layout.SUMMARY_CSV).exists():
        removed = layout.drop_report()
        if removed:
            logger.info(f"removed the report of a summary that is gone: {', '.join(removed)}")


def restore_model_caches():
    """Deleted model caches (resources/models/, results/models/) are rebuilt here, before the DAG exists, not by the
    prepare_model job: a job that has to run reruns every job downstream of it, here every finetune and generation
    of the model, although the weights are the same (their identity is the model's spec: emgrid.models.
    restore_manifest). A manifest is restored only for a model with results; a new model goes through its job."""
    cells = Path(layout.RESULTS) / "cells"
    for model in grid.all_model_specs(config):
        has_results = (cells / model).is_dir() or (
            model == G.judge_model and next(cells.glob("*/*/judged/*.jsonl"), None) is not None
        )
        manifest = Path(layout.MANIFEST.format(model=model))
        if not has_results and not manifest.is_file():
            continue
        try:
            done = restore_manifest(model_spec(config, model), manifest.parent, model_cache_dir(config))
        except EmgridError as e:
            logger.warning(f"models.{model}: could not rebuild its deleted cache ({e}); its jobs will say why")
            continue
        if done:
            logger.info(f"{done} (the same weights: nothing reruns for them)")


if not workflow.remote_exec:
    drop_stale_report()
    restore_model_caches()
    MISSING_RESULTS = missing_results(config)
    if MISSING_RESULTS:
        logger.warning(format_missing_results(MISSING_RESULTS))
