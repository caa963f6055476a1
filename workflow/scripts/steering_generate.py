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
    from emgrid.generate import GenerateSpec, answer_tokens
    from emgrid.throughput import record
    from emgrid.throughput_model import forward_features

    tokens = answer_tokens(snakemake.input.manifest, rows)
    spec = GenerateSpec.from_dict(snakemake.params.gen["spec"])
    # hooked: a steering hook ran in every layer call (the unsteered run of a target has none)
    hooked = direction is not None and direction.ok
    features = forward_features(len(rows), spec.batch_size, spec.max_new_tokens, spec.dtype, hooked)
    record(snakemake.rule, time.time() - t0, tokens, answers=len(rows), **features)
