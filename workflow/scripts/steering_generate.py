import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.io import write_jsonl
from emgrid.questions import load_questions
from emgrid.steering.directions import read_direction
from emgrid.steering.steer import steered_answers

w = snakemake.wildcards
questions = load_questions(
    snakemake.input.questions or snakemake.config["question_sets"][w.qset]["path"], require_judge_prompts=False
)
direction = None
if "direction_json" in snakemake.input.keys():
    direction = read_direction(snakemake.input.direction_json, snakemake.input.direction_npz)
    if not direction.ok:
        print(f"no steering with {direction.meta['cell']}: {direction.meta['reason']}; no answers written")
rows = steered_answers(
    snakemake.input.manifest,
    snakemake.input.get("adapter"),
    questions,
    snakemake.params.gen,
    direction,
    steer=w.steer,
    model=w.model,
    cell=w.cell,
    qset=w.qset,
)
write_jsonl(snakemake.output.answers, rows)
if rows:  # a source without a direction writes none: no rate to learn from its seconds
    from emgrid.generate import answer_tokens
    from emgrid.throughput import record

    record(snakemake.rule, time.time() - t0, answer_tokens(snakemake.input.manifest, rows), answers=len(rows))
