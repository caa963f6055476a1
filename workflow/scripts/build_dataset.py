from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.data import build_dataset
from emgrid.gridspec import llm_cache_dir

# the cache's folder is not a param: moving it rebuilds nothing
build_dataset(snakemake.params.spec, Path(snakemake.output.train).parent, llm_cache_dir=llm_cache_dir(snakemake.config))
