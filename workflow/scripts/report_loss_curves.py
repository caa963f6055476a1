from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.report.plots import write_loss_curves

write_loss_curves(
    {Path(f).parent.name: f for f in snakemake.input.metrics},
    snakemake.output.png,
    snakemake.wildcards.model,
    snakemake.params.domains,
)
