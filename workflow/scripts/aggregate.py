from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.aggregate import FINDINGS, aggregate_files, analysis_specs

criterion, min_mass, bootstrap, alpha = analysis_specs(snakemake.params.analysis)
aggregate_files(
    list(snakemake.input.judged),
    snakemake.output.scores,
    snakemake.output.summary,
    criterion,
    min_mass,
    bootstrap=bootstrap,
    alpha=alpha,
    findings_csv={name: snakemake.output[name] for name in FINDINGS},
    answers_paths=list(snakemake.input.answers),
)
