import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.generate import GenerateSpec, generate_answers
from emgrid.jobparams import llm_cache_dir
from emgrid.io import write_jsonl
from emgrid.questions import load_questions

gen = snakemake.params.gen
questions = load_questions(
    snakemake.input.questions or snakemake.config["question_sets"][snakemake.wildcards.qset]["path"],
    require_judge_prompts=False,
)
cell = dict(model=snakemake.wildcards.model, cell=snakemake.wildcards.cell, qset=snakemake.wildcards.qset)
spec = GenerateSpec.from_dict(gen["spec"])
if snakemake.rule == "generate_openai":  # an API model: the finetuned model id is in finetune.json
    from emgrid.api_generate import generate_answers_api

    # the cache's folder is not a param: moving it reruns nothing
    rows = generate_answers_api(
        snakemake.input.manifest,
        snakemake.input.get("finetune"),
        questions,
        spec,
        gen["triggers"],
        ledger_dir=llm_cache_dir(snakemake.config),
        **cell,
    )
else:
    from emgrid.generate import answer_tokens
    from emgrid.throughput import record
    from emgrid.throughput_model import forward_features

    rows = generate_answers(
        snakemake.input.manifest, snakemake.input.get("adapter"), questions, spec, gen["triggers"], **cell
    )
    tokens = answer_tokens(snakemake.input.manifest, rows)
    features = forward_features(len(rows), spec.batch_size, spec.max_new_tokens, spec.dtype)
    record(snakemake.rule, time.time() - t0, tokens, answers=len(rows), **features)
write_jsonl(snakemake.output.answers, rows)
