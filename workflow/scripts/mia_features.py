from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.analyses.mia import mia_features_file
from emgrid.analyses.spec import MiaSpec

mia_features_file(
    snakemake.input.manifest,
    snakemake.input.examples,
    MiaSpec.from_dict(snakemake.params.mia),
    snakemake.output.features,
    snakemake.output.summary,
    model=snakemake.wildcards.model,
    domain=snakemake.wildcards.domain,
    seed=int(snakemake.wildcards.seed),
)
