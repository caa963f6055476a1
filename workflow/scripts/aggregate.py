from emgrid.layout import drop_report

# First, before the slow imports: the summary this job replaces is gone already (snakemake removed it), and a kill
# or failure from here on must not leave a report or report.zip showing its numbers.
removed = drop_report()

from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)
if removed:
    import logging

    logging.getLogger("emgrid").info("removed the report of the summary this job replaces: %s", ", ".join(removed))

from emgrid.aggregate import aggregate_files
from emgrid.findings.tables import FINDINGS
from emgrid.scores import analysis_specs
from emgrid.efficacy.summary import not_taken, read_table
from emgrid.judge.scoring import tags_categorizer

criterion, min_mass, bootstrap, alpha = analysis_specs(snakemake.params.analysis)
# analysis.drop_untaken_cells: the efficacy table is an input only when the switch is on
efficacy = snakemake.input.get("efficacy")
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
    exclude_cells=not_taken(read_table(efficacy)) if efficacy else (),
    categorize=tags_categorizer(snakemake.params.analysis),
)
