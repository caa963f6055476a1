from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.answers import write_answer_browser

write_answer_browser(
    snakemake.input.scores,
    snakemake.input.summary,
    snakemake.output.html,
    model=snakemake.wildcards.model,
    qset=snakemake.wildcards.qset,
    title=snakemake.params.title,
    domains=snakemake.params.domains,
)
