import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.io import read_jsonl
from emgrid.steering.directions import extract_direction, write_direction
from emgrid.steering.spec import SteeringSpec
from emgrid.throughput import record
from emgrid.throughput_model import forward_features

params = dict(snakemake.params.steering)
min_mass = params.pop("min_mass")
judged = [row for path in snakemake.input.judged for row in read_jsonl(path)]
spec = SteeringSpec(**params)
meta, arrays = extract_direction(
    snakemake.input.manifest,
    snakemake.input.adapter,
    judged,
    spec,
    min_mass,
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
)
print(f"direction of {snakemake.wildcards.cell}: {meta['status']} {meta.get('reason') or ''} {meta['counts']}")
write_direction(meta, arrays, snakemake.output.json, snakemake.output.npz)
if meta.get("tokens"):  # a cell without enough answers loads no model: no rate to learn from its seconds
    # per judged answer read: the planner counts the cell's answers, not which of them make the two sets
    # judged rows are one per answer and metric: count the answers
    keys = ("qset", "question_key", "paraphrase_index", "condition", "sample")
    n = len({tuple(r.get(k) for k in keys) for r in judged})
    features = forward_features(n, spec.batch_size, 0, spec.dtype)
    record(snakemake.rule, time.time() - t0, meta["tokens"], answers=n, **features)
