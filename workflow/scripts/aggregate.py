from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.aggregate import Criterion, aggregate_files

analysis = snakemake.params.analysis
aggregate_files(
    list(snakemake.input.judged),
    snakemake.output.scores,
    snakemake.output.summary,
    Criterion.from_dict({k: v for k, v in analysis.items() if k != "min_mass"}),
    analysis["min_mass"],
)
