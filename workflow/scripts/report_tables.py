from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.report.tables import write_tables

write_tables(
    snakemake.input.summary,
    snakemake.input.trigger,
    snakemake.input.ranking,
    dict(snakemake.output.items()),
    finetune_metrics={"/".join(Path(f).parts[-3:-1]): f for f in snakemake.input.finetune},
    domains=snakemake.params.domains,
)
