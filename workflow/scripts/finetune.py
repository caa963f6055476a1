from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.finetune import FinetuneSpec, finetune

finetune(
    snakemake.input.manifest,
    snakemake.input.train,
    snakemake.output.adapter,
    FinetuneSpec.from_dict(snakemake.params.spec),
    snakemake.output.metrics,
)
