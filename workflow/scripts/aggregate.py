from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.aggregate import FINDINGS, Criterion, aggregate_files
from emgrid.stats import BootstrapSpec

analysis = snakemake.params.analysis
aggregate_files(
    list(snakemake.input.judged),
    snakemake.output.scores,
    snakemake.output.summary,
    Criterion.from_dict({k: v for k, v in analysis.items() if k not in ("min_mass", "alpha", "bootstrap")}),
    analysis["min_mass"],
    bootstrap=BootstrapSpec.from_dict(analysis["bootstrap"]),
    alpha=analysis["alpha"],
    findings_csv={name: snakemake.output[name] for name in FINDINGS},
)
