# emgrid: emergent misalignment across domains x backdoor triggers x models.
# Orchestration only; the logic lives in src/emgrid (see docs/design.md).
from snakemake.utils import min_version

from emgrid.report.description import workflow_description

min_version("9.27")


# The paper grid by default; `--configfile F` replaces it (instead of being merged into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# The criterion and interval text come from the code that defines them (emgrid.report.description).
report: workflow_description(config, workflow.source_path("workflow/report/workflow.rst"))


include: "workflow/rules/models.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/efficacy.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/steering.smk"
include: "workflow/rules/report.smk"


# Seconds of work each: on a cluster they run where snakemake runs (often the only node with internet, which hub
# datasets and synthetic sources need) instead of paying 10-15 s of SLURM start-up and polling per job.
localrules:
    all,
    prepare_model,
    build_dataset,
    aggregate,
    plots,
    loss_curves,
    report_tables,
    answer_browser,
    efficacy_summary,
    report,
    mia_analysis,
    diversity_analysis,
    mia_plot,
    diversity_plot,
    diversity_category_plot,
    steering_summary,
    steering_plots,
    # Waits hours on OpenAI's fine-tuning queue doing nothing: no cluster allocation should be held for that.
    finetune_openai,


onerror:
    drop_stale_report()


rule all:
    default_target: True
    input:
        summary=layout.SUMMARY_CSV,
        report=layout.REPORT_PAGE,
        analyses=G.analysis_outputs(),
        efficacy=G.efficacy_table,
        steering=steering_targets,
