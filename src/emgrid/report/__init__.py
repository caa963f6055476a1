"""The report: figures (`plots`, `steering_plots`, `analysis_plots`), tables (`tables`), the answer browser
(`answers`) and the self-contained HTML page (`page`), captioned from one registry (`captions`). The workflow writes
each figure and table as a declared output of its own rule and then assembles the page from them
(`assemble.write_report_page`); tests call the same functions in the same order.
"""

from emgrid.report.answers import write_answer_browser
from emgrid.report.assemble import write_report_page
from emgrid.report.page import SECTIONS, PageInputs, Section, write_page
from emgrid.report.plots import PLOT_KINDS, write_loss_curves, write_plots, write_transfer_plot
from emgrid.report.tables import TABLES, write_tables

__all__ = [
    "PLOT_KINDS",
    "TABLES",
    "SECTIONS",
    "PageInputs",
    "Section",
    "write_answer_browser",
    "write_loss_curves",
    "write_page",
    "write_plots",
    "write_report_page",
    "write_tables",
    "write_transfer_plot",
]
