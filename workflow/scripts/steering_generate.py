import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.io import write_json, write_jsonl
from emgrid.questions import load_questions
from emgrid.steering.directions import read_direction
from emgrid.steering.grid import cache_dir
from emgrid.steering.runs import answer_runs

w = snakemake.wildcards
questions = load_questions(
    snakemake.input.questions or snakemake.config["question_sets"][w.qset]["path"], require_judge_prompts=False
)
directions = {}
for json_path, npz_path in zip(snakemake.input.direction_json, snakemake.input.direction_npz):
    direction = read_direction(json_path, npz_path)
    directions[direction.meta["cell"]] = direction
result = answer_runs(
    snakemake.input.manifest,
    snakemake.input.get("adapter"),
    questions,
    snakemake.params.runs,
    directions,
    cache_dir(snakemake.config),  # not a param: moving the cache reruns nothing
    model=w.model,
    cell=w.cell,
    qset=w.qset,
)
for steer, reason in result.skipped.items():
    print(f"{steer}: {reason}; no answers")
write_jsonl(snakemake.output.answers, [row for rows in result.rows.values() for row in rows])
write_json(snakemake.output.runs, result.index())
cached = sum(len(rows) for rows in result.rows.values()) - len(result.generated)
print(
    f"steering runs: {len(result.rows)}; answers generated: {len(result.generated)}, from the cache: {cached}; "
    f"model loads: {result.loads}"
)
if result.generated:  # answers read from the cache cost no GPU time: the rate is learned from generated ones only
    from emgrid.throughput import answer_tokens, record

    tokens = answer_tokens(snakemake.input.manifest, result.generated)
    features = result.generated_features(snakemake.params.runs)
    record(snakemake.rule, time.time() - t0, tokens, answers=len(result.generated), **features)
