"""The report: figures (`plots`), tables (`tables`), the answer browser (`answers`) and the self-contained HTML page
(`page`). The workflow writes each figure and table as a declared output of its own rule and then assembles the page
from them; `write_report` does the same in one call (for notebooks and tests).
"""

from emgrid.report.answers import write_answer_browser
from emgrid.report.build import write_report
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
    "write_report",
    "write_tables",
    "write_transfer_plot",
]
