"""The report rule's one step as a library call: the page from the rule's named inputs and its `report` params.

workflow/scripts/report.py is a thin adapter onto `write_report_page`, and the tests call it too, after the same
figure, table and browser functions the other report rules call: there is one report pipeline, the workflow's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from emgrid import layout
from emgrid.report.page import PageInputs, write_page

__all__ = ["write_report_page"]


def write_report_page(
    html: str | Path,
    inputs: Mapping[str, str | Path | Sequence[str | Path]],
    settings: Mapping[str, Any],
    datasets_root: str | Path = layout.DATASETS,
) -> Path:
    """Write the page to `html` from `inputs` (the page rule's named inputs: one path or a list of paths each; the
    names emgrid.report.page's sections read) and `settings` (the `report` params: `title`, `notes`, `interval_level`
    (the level the aggregate's intervals were computed at, which the page's texts state), and the rest shown as the
    page's configuration). Each dataset card in `inputs["cards"]` is labelled with its folder under
    `datasets_root`."""
    files = {
        name: [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        for name, paths in inputs.items()
    }
    cards = {Path(c).parent.relative_to(datasets_root).as_posix(): Path(c) for c in files.get("cards", ())}
    return write_page(
        PageInputs(
            html=Path(html),
            files=files,
            title=settings["title"],
            notes=tuple(settings["notes"]),
            cards=cards,
            config_snapshot=dict(settings),
            level=float(settings["interval_level"]),
        )
    )
