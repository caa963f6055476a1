from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.steering_plots import write_steering_plots

write_steering_plots(
    snakemake.input.matrix, snakemake.input.directions, snakemake.input.cosine, dict(snakemake.output.items())
)
