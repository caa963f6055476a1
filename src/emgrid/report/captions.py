"""The caption registry: one reStructuredText file per figure or table in workflow/report/, read by both readers.

Snakemake's report shows a declared output with the file its rule names in `report(..., caption=...)` and renders it
with Jinja, `snakemake.wildcards` and `snakemake.config` in reach; the HTML page shows the same file under the same
figure (and a table's caption as its section's method note), rendered here with the same names filled from what the
page is given (model, question set, criterion, interval level). So a caption is written once, and the two reports
cannot drift apart (the page once had its own captions in Python, and its own method notes).
The package reaches the files through `workflow_files/captions`, a link to workflow/report.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import jinja2

from emgrid.errors import DataError
from emgrid.scores import Criterion

__all__ = ["CAPTIONS_DIR", "PLOT_CAPTIONS", "STEERING_CAPTIONS", "caption"]

CAPTIONS_DIR = Path(__file__).resolve().parents[1] / "workflow_files" / "captions"

#: The caption file of each per-model x question set figure (emgrid.report.plots.PLOT_KINDS), as report.smk names it.
PLOT_CAPTIONS = {
    "ranking": "ranking_plot",
    "misalignment": "misalignment",
    "sensitivity": "sensitivity",
    "alignment_trigger": "alignment_trigger",
    "categories": "categories_plot",
}
#: The caption file of each steering figure (emgrid.report.steering_plots), as steering.smk names it.
STEERING_CAPTIONS = {"matrix": "steering_matrix", "sweep": "steering_sweep", "cosine": "steering_cosine_plot"}

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
#: reStructuredText inline markup the captions use, reduced to its text for the page (which escapes what is left).
_MARKUP = re.compile(r"\*\*(.+?)\*\*|``(.+?)``|\*(.+?)\*", re.S)


@lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    path = CAPTIONS_DIR / f"{name}.rst"
    if not path.is_file():
        raise DataError(f"no caption {name!r}: {path} does not exist")
    return _ENV.from_string(path.read_text(encoding="utf-8"))


def caption(name: str, model: str = "", qset: str = "", criterion: Criterion | None = None, level: float = 0.95) -> str:
    """The caption `name` (a file stem in workflow/report/) as one line of plain text, with the wildcards Snakemake
    would fill (`model`, `qset`) and the analysis settings it reads from the config taken from `criterion` and
    `level` (`analysis.bootstrap.level`, the level of every interval but the answer-level Wilson ones)."""
    crit = criterion or Criterion()
    analysis = {k: f"{v:g}" if isinstance(v, float) else v for k, v in vars(crit).items()}
    analysis["bootstrap"] = {"level": level}
    snakemake = SimpleNamespace(wildcards=SimpleNamespace(model=model, qset=qset), config={"analysis": analysis})
    text = _template(name).render(snakemake=snakemake)
    text = _MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), text)
    return " ".join(text.split())
