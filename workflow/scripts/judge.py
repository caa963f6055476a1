from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.jobparams import judge_transport, llm_cache_dir
from emgrid.io import read_json, read_jsonl, write_jsonl
from emgrid.judge import judge_answers_file
from emgrid.steering.steer import check_skipped, run_rows

# rules judge and steering_judge (a steered run also gets its source's direction.json; its answers are its rows of
# the target's answers file, which holds every run of that target)
w = snakemake.wildcards
direction = read_json(snakemake.input.direction) if "direction" in snakemake.input.keys() else None
steered = snakemake.rule == "steering_judge"
select = run_rows(w.steer) if steered else None
where = f"{snakemake.input.answers} (run {w.steer})" if steered else snakemake.input.answers
if steered and check_skipped(direction, [r for r in read_jsonl(snakemake.input.answers) if select(r)], where):
    judged = []  # the source has no direction: nothing was generated, nothing to judge
else:
    judged = judge_answers_file(
        snakemake.input.answers,
        snakemake.input.questions or snakemake.config["question_sets"][w.qset]["path"],
        snakemake.params.question_options,
        snakemake.params.planned,
        # not params: concurrency, timeouts, retries and polling change no score, so they must rerun nothing
        {**snakemake.params.judge, **judge_transport(snakemake.config)},
        llm_cache_dir(snakemake.config),  # not a param: moving the cache reruns nothing
        model=w.model,
        cell=w.cell,
        qset=w.qset,
        model_manifest=snakemake.input.get("judge_manifest"),
        select=select,
    )
write_jsonl(snakemake.output.judged, judged)
