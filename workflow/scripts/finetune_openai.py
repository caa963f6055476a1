from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0])

from emgrid.api_finetune import ApiFinetuneSpec, finetune_api
from emgrid.jobparams import api_job_state_dir
from emgrid.models import read_manifest

job = snakemake.params.job
finetune_api(
    read_manifest(snakemake.input.manifest),
    snakemake.input.train,
    snakemake.output.metrics,
    snakemake.output.events,
    ApiFinetuneSpec.from_dict(job["spec"]),
    cell_id=snakemake.wildcards.cell,
    training_price=job["training_price"],
    state_dir=api_job_state_dir(snakemake.config),  # not a param: moving the cache reruns nothing
)
