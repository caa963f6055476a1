from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.analysis_plots import write_diversity_by_category

write_diversity_by_category(snakemake.input.scores, snakemake.output.png, snakemake.params.domains)
