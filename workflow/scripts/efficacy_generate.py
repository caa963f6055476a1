import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.efficacy.evaluate import efficacy_answers
from emgrid.generation.plan import GenerateSpec
from emgrid.io import write_jsonl
from emgrid.throughput import answer_tokens, record
from emgrid.throughput_model import forward_features

rows = efficacy_answers(
    snakemake.input.manifest,
    snakemake.input.get("adapter"),
    snakemake.input.heldout,
    snakemake.params.gen,
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
    domain=snakemake.wildcards.domain,
)
tokens = answer_tokens(snakemake.input.manifest, rows)
spec = GenerateSpec.from_dict(snakemake.params.gen["spec"])
features = forward_features(len(rows), spec.batch_size, spec.max_new_tokens, spec.dtype)
record(snakemake.rule, time.time() - t0, tokens, answers=len(rows), **features)
write_jsonl(snakemake.output.answers, rows)
