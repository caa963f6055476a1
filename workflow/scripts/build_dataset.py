from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.data import build_dataset
from emgrid.jobparams import llm_cache_dir, llm_transport

params = dict(snakemake.params.spec)
if "llm" in params:  # timeouts, retries and the key variable are not params: changing them rebuilds nothing
    params["llm"] = {**params["llm"], **llm_transport(snakemake.config)}
# the cache's folder is not a param: moving it rebuilds nothing
build_dataset(params, Path(snakemake.output.train).parent, llm_cache_dir=llm_cache_dir(snakemake.config))
