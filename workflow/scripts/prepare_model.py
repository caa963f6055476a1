from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.models import prepare_model

prepare_model(snakemake.params.spec, Path(snakemake.output.manifest).parent)
