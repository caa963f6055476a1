from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.analyses.diversity import diversity_file
from emgrid.analyses.spec import DiversitySpec

diversity_file(
    snakemake.input.examples,
    snakemake.output.scores,
    DiversitySpec.from_dict(snakemake.params.diversity),
    domain=snakemake.wildcards.domain,
    seed=int(snakemake.wildcards.seed),
)
