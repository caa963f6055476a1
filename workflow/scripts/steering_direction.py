from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.io import read_jsonl
from emgrid.steering.directions import extract_direction, write_direction
from emgrid.steering.spec import SteeringSpec

params = dict(snakemake.params.steering)
min_mass = params.pop("min_mass")
meta, arrays = extract_direction(
    snakemake.input.manifest,
    snakemake.input.adapter,
    [row for path in snakemake.input.judged for row in read_jsonl(path)],
    SteeringSpec(**params),
    min_mass,
    model=snakemake.wildcards.model,
    cell=snakemake.wildcards.cell,
)
print(f"direction of {snakemake.wildcards.cell}: {meta['status']} {meta.get('reason') or ''} {meta['counts']}")
write_direction(meta, arrays, snakemake.output.json, snakemake.output.npz)
