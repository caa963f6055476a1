from emgrid.runlog import redirect_to_log

redirect_to_log(snakemake.log[0], snakemake.threads)

from emgrid.report.assemble import write_report_page

write_report_page(snakemake.output.html, dict(snakemake.input.items()), snakemake.params.report)
