from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.analyses.mia import mia_analysis_files
from emgrid.analyses.spec import TargetSpec

params = snakemake.params.analysis
mia_analysis_files(
    list(snakemake.input.features),
    snakemake.input.summary,
    TargetSpec.from_dict(params["target"]),
    params["n_permutations"],
    params["seed"],
    snakemake.output.domains,
    snakemake.output.tests,
)
