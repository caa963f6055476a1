"""The report: figures (`plots`, `steering_plots`, `analysis_plots`), tables (`tables`), the answer browser
(`answers`) and the self-contained HTML page (`page`), captioned from one registry (`captions`). The workflow writes
each figure and table as a declared output of its own rule and then assembles the page from them
(`assemble.write_report_page`); tests call the same functions in the same order.

The package imports none of its modules: the Snakefile imports `description` on every parse (and twice more in
every cluster job), and the figures' and page's libraries (matplotlib, jinja2, scipy) stay out of that; import from
the module that defines a name.
"""
