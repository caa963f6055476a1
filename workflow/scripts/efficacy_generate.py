import time

from emgrid.runlog import redirect_to_log

t0 = time.time()

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.efficacy.evaluate import efficacy_answers
from emgrid.generate import answer_tokens
from emgrid.io import write_jsonl
from emgrid.throughput import record

rows = efficacy_answers(
    snakemake.input.manifest,
    snakemake.input.get("adapter"),
    snakemake.input.heldout,
    snakemake.params.gen,
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
    domain=snakemake.wildcards.domain,
)
record(snakemake.rule, time.time() - t0, answer_tokens(snakemake.input.manifest, rows), answers=len(rows))
write_jsonl(snakemake.output.answers, rows)
