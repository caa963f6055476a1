from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.plots import write_transfer_plot

write_transfer_plot(
    snakemake.input.transfer,
    snakemake.output.png,
    snakemake.wildcards.model,
    snakemake.wildcards.qset,
    snakemake.params.domains,
)
