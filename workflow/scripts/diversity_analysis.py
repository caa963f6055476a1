from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.analyses.diversity import diversity_analysis_files
from emgrid.analyses.spec import TargetSpec

params = snakemake.params.analysis
diversity_analysis_files(
    list(snakemake.input.scores),
    snakemake.input.summary,
    TargetSpec.from_dict(params["target"]),
    snakemake.output.scores,
    snakemake.output.domains,
    snakemake.output.tests,
)
