from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.steering.matrix import summarize_files

params = snakemake.params.summary
tables = summarize_files(
    list(snakemake.input.judged),
    list(zip(snakemake.input.direction_json, snakemake.input.direction_npz)),
    dict(snakemake.output.items()),
    params["analysis"],
    params["layers"],
)
print(tables["matrix"].to_string())
