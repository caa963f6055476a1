from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.efficacy.summary import summarize_files

params = snakemake.params.efficacy
# results/cells/{model}/{cell}/efficacy/{domain}/{answers,judged}.jsonl: the domain is the parent folder's name
summarize_files(
    [(p, params["domains"][Path(p).parent.name]) for p in snakemake.input.scored],
    snakemake.output.scores,
    snakemake.output.table,
    min_mass=params["min_mass"],
)
