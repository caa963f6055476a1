from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.jobparams import model_cache_dir
from emgrid.models import prepare_model

# the cache's folder is not a param: moving it reruns nothing (the weights are found by their content key)
prepare_model(
    snakemake.params.spec, Path(snakemake.output.manifest).parent, cache_dir=model_cache_dir(snakemake.config)
)
