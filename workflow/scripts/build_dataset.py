from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.data import build_dataset

build_dataset(snakemake.params.spec, Path(snakemake.output.train).parent)
