from emgrid.runlog import redirect_to_log

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
