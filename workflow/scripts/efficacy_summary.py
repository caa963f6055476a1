from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.efficacy.summary import summarize_files
from emgrid.stats import BootstrapSpec

params = snakemake.params.efficacy
# results/cells/{model}/{cell}/efficacy/{domain}/{answers,judged}.jsonl: the domain is the parent folder's name
summarize_files(
    [(p, params["domains"][Path(p).parent.name]) for p in snakemake.input.scored],
    snakemake.output.scores,
    snakemake.output.table,
    min_mass=params["min_mass"],
    bootstrap=BootstrapSpec.from_dict(params.get("bootstrap")),
)
