import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.generation.plan import GenerateSpec
from emgrid.generation.runner import generate_answers
from emgrid.jobparams import llm_cache_dir
from emgrid.io import write_jsonl
from emgrid.questions import load_questions
from emgrid.throughput import answer_tokens, record
from emgrid.throughput_model import forward_features

gen = snakemake.params.gen
questions = load_questions(
    snakemake.input.questions or snakemake.config["question_sets"][snakemake.wildcards.qset]["path"],
    require_judge_prompts=False,
)
cell = dict(model=snakemake.wildcards.model, cell=snakemake.wildcards.cell, qset=snakemake.wildcards.qset)
spec = GenerateSpec.from_dict(gen["spec"])
# the cell's finetune output: a local model's LoRA adapter, an API model's finetune.json (the finetuned model's id)
finetuned = snakemake.input.get("adapter") or snakemake.input.get("finetune")
# the response cache's folder (API models) is not a param: moving it reruns nothing
rows = generate_answers(
    snakemake.input.manifest,
    finetuned,
    questions,
    spec,
    gen["triggers"],
    **cell,
    ledger_dir=llm_cache_dir(snakemake.config),
)
if snakemake.rule != "generate_openai":  # an API model's job takes no GPU time to calibrate
    tokens = answer_tokens(snakemake.input.manifest, rows)
    features = forward_features(len(rows), spec.batch_size, spec.max_new_tokens, spec.dtype)
    record(snakemake.rule, time.time() - t0, tokens, answers=len(rows), **features)
write_jsonl(snakemake.output.answers, rows)
