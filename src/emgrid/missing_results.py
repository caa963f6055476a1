"""Results gone missing under results made from them, found at start-up (the Snakefile warns with the command that
rebuilds them): Snakemake itself rebuilds a missing file only when a job that reads it has to run anyway."""

from __future__ import annotations

import os
from typing import Callable, Iterable

from emgrid import layout
from emgrid.efficacy import grid as efficacy_grid
from emgrid.grid import cells, datasets
from emgrid.jobparams import api_models


def missing_results(config: dict, exists: Callable[[str], bool] = os.path.exists) -> list[tuple[str, str]]:
    """(missing result, an existing result made from it) for every intermediate of the grid that is gone while what
    was made from it is still there; `config` as `check` left it.

    Why: Snakemake rebuilds a missing file only when a job that reads it has to run anyway. A deleted answers file
    under its judged rows is silently kept missing, and comes back much later as an unexplained rerun (the next
    judge edit regenerates it, and everything made from it). Listed at start-up instead, with the command that
    rebuilds them (`format_missing_results`). Covers the grid's chain: datasets, finetunes, answers, judged rows,
    efficacy answers and judged rows, up to summary.csv, efficacy.csv and the report page.
    """
    found: dict[str, str] = {}
    for up, down in _result_edges(config):
        if up not in found and not exists(up) and exists(down):
            found[up] = down
    return sorted(found.items())


def _result_edges(config: dict) -> Iterable[tuple[str, str]]:
    """(input, output made from it) pairs between the grid's results, as the rules wire them."""
    api = set(api_models(config))
    for cell in cells(config):
        metrics, adapter = layout.cell_path(layout.FINETUNE_METRICS, cell), layout.cell_path(layout.ADAPTER, cell)
        # the finetune's output that later stages read: the adapter (local) or finetune.json (the API model's id)
        trained = None if cell.is_base else metrics if cell.model in api else adapter
        if trained:
            yield layout.dataset_path(layout.TRAIN, cell.domain, cell.variant, cell.seed), metrics
        for qset in config["question_sets"]:
            answers, judged = layout.answers_path(cell, qset), layout.judged_path(cell, qset)
            if trained:
                yield trained, answers
            yield answers, judged
            yield judged, layout.SUMMARY_CSV
    for cell, domain in efficacy_grid.efficacy_targets(config):
        answers, scored = (
            layout.cell_path(layout.EFFICACY_ANSWERS, cell, domain=domain),
            efficacy_grid.efficacy_scored_input(config, cell, domain),
        )
        d, v, s = efficacy_grid.efficacy_dataset(config, cell, domain)
        yield layout.dataset_path(layout.HELDOUT, d, v, s), answers
        if not cell.is_base:
            yield layout.cell_path(layout.ADAPTER, cell), answers
        if scored != answers:
            yield answers, scored
        yield scored, layout.EFFICACY_CSV
    for d, v, s in datasets(config):
        yield layout.dataset_path(layout.CARD, d, v, s), layout.REPORT_PAGE


def format_missing_results(missing: Iterable[tuple[str, str]]) -> str:
    """The start-up warning for `missing_results`: each file, what was made from it, and the one command that
    rebuilds them all and everything made from them (a rebuilt answers file holds new samples, so the judged rows
    of the old one must not stay)."""
    missing = list(missing)
    if not missing:
        return ""
    lines = [f"  - {up} (missing; {down} was made from it)" for up, down in missing]
    return (
        "results missing under results made from them; snakemake does not rebuild them on its own. Rebuild them and "
        "everything made from them with your usual command plus:\n"
        f"    --forcerun {' '.join(up for up, _ in missing)}\n" + "\n".join(lines)
    )
