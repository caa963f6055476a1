from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.gridspec import llm_cache_dir
from emgrid.integrity import check_answers
from emgrid.io import read_jsonl, write_jsonl
from emgrid.judge import JudgeSpec, judge_answers
from emgrid.questions import load_questions

questions = load_questions(
    snakemake.input.questions or snakemake.config["question_sets"][snakemake.wildcards.qset]["path"],
    **snakemake.params.question_options,
)
answers = read_jsonl(snakemake.input.answers)
w = snakemake.wildcards
check_answers(answers, questions, snakemake.params.planned, w.model, w.cell, w.qset, snakemake.input.answers)
judged = judge_answers(
    answers,
    {q.key: q for q in questions},
    JudgeSpec.from_dict(snakemake.params.judge),
    llm_cache_dir(snakemake.config),  # not a param: moving the cache reruns nothing
    model_manifest=snakemake.input.get("judge_manifest"),
)
write_jsonl(snakemake.output.judged, judged)
