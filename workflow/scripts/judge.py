from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.gridspec import llm_cache_dir
from emgrid.io import write_jsonl
from emgrid.judge import judge_answers_file

w = snakemake.wildcards
judged = judge_answers_file(
    snakemake.input.answers,
    snakemake.input.questions or snakemake.config["question_sets"][w.qset]["path"],
    snakemake.params.question_options,
    snakemake.params.planned,
    snakemake.params.judge,
    llm_cache_dir(snakemake.config),  # not a param: moving the cache reruns nothing
    model=w.model,
    cell=w.cell,
    qset=w.qset,
    model_manifest=snakemake.input.get("judge_manifest"),
)
write_jsonl(snakemake.output.judged, judged)
