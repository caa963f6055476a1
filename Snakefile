# emgrid: emergent misalignment across domains x backdoor triggers x models.
# Orchestration only; the logic lives in src/emgrid (see docs/design.md).
from snakemake.utils import min_version

min_version("9.0")


# The paper grid by default; `--configfile F` replaces it (instead of being merged into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        summary="results/summary/summary.csv",
        report="results/report/report.html",
    default_target: True
