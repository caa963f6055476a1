from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.analysis_plots import write_analysis_scatter

write_analysis_scatter(
    snakemake.input.domains,
    snakemake.input.tests,
    snakemake.output.png,
    model=snakemake.wildcards.model,
    qset=snakemake.wildcards.qset,
    domains=snakemake.params.domains,
    what="MIA features" if snakemake.rule == "mia_plot" else "Topical diversity",
)
