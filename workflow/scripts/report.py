from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from pathlib import Path

from emgrid.report import write_report

params = snakemake.params.report
write_report(
    snakemake.input.summary,
    snakemake.input.scores,
    Path(snakemake.output.html).parent,
    title=params["title"],
    notes=params["notes"],
    cards={Path(c).parent.relative_to("results/datasets").as_posix(): c for c in snakemake.input.cards},
    config_snapshot=params,
    finetune_metrics={"/".join(Path(f).parts[-3:-1]): f for f in snakemake.input.finetune},
)
