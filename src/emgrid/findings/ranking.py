"""Domains ranked by a summary column, seeds averaged: the plain ranking the analyses correlate their features
with (emgrid.analyses.domain_stats). The report's ranking, with rank intervals, is `emgrid.findings.clustered.ranking`.
"""

from __future__ import annotations

import pandas as pd

from emgrid.errors import DataError

__all__ = ["rank_domains"]


def rank_domains(
    summary: pd.DataFrame,
    condition: str = "trigger",
    variant: str | None = "backdoor",
    metric: str = "misalignment_rate",
    qset: str | None = None,
) -> pd.DataFrame:
    """Domains ranked by `metric` (descending; ties keep alphabetical order) per model x qset, seeds averaged.

    `variant=None` ranks every variant (domain x variant rows). Rows: model, qset, rank, domain, variant, value,
    n_seeds, seed_min, seed_max, n_answers.
    """
    if metric not in summary.columns:
        raise DataError(f"rank_domains: summary has no column {metric!r}")
    sel = summary[summary["condition"] == condition]
    if variant is not None:
        sel = sel[sel["variant"] == variant]
    if qset is not None:
        sel = sel[sel["qset"] == qset]
    cols = ["model", "qset", "rank", "domain", "variant", "value", "n_seeds", "seed_min", "seed_max", "n_answers"]
    if sel.empty:
        return pd.DataFrame(columns=cols)
    agg = (
        sel.groupby(["model", "qset", "domain", "variant"], sort=True)
        .agg(
            value=(metric, "mean"),
            n_seeds=("cell", "nunique"),
            seed_min=(metric, "min"),
            seed_max=(metric, "max"),
            n_answers=("n_answers", "sum"),
        )
        .reset_index()
    )
    parts = []
    for _, g in agg.groupby(["model", "qset"], sort=True):
        g = g.sort_values("value", ascending=False, kind="stable", na_position="last").copy()
        g["rank"] = range(1, len(g) + 1)
        parts.append(g)
    return pd.concat(parts, ignore_index=True)[cols]
