from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.plots import write_plots

write_plots(
    snakemake.input.summary,
    snakemake.input.ranking,
    dict(snakemake.output.items()),
    snakemake.wildcards.model,
    snakemake.wildcards.qset,
    snakemake.params.domains,
)
