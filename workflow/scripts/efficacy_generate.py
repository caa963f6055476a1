from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.efficacy.evaluate import efficacy_answers
from emgrid.io import write_jsonl

rows = efficacy_answers(
    snakemake.input.manifest,
    snakemake.input.get("adapter"),
    snakemake.input.heldout,
    snakemake.params.gen,
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
    domain=snakemake.wildcards.domain,
)
write_jsonl(snakemake.output.answers, rows)
