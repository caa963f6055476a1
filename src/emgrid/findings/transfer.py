"""The cross-domain transfer matrix: a model finetuned on domain A answering domain B's probe questions.

Rows are training domains (plus the base cell), columns are probe domains (the question file's `domain` field,
carried by every answer row as `probe_domain`). Each entry is a misalignment rate and a mean alignment with the
primary interval of `emgrid.stats.cluster_t` (as in summary.csv: never zero-width at 0 of n); the diagonal contrast
asks whether misalignment stays in its own domain, with a joint cluster-bootstrap interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emgrid.stats import BootstrapSpec, layout, percentile_interval
from emgrid.stats.bootstrap import hierarchical_bootstrap
from emgrid.stats.cluster_t import clustered_rate_interval, mean_interval

GROUP = ["model", "qset", "variant", "condition", "domain"]
METRICS = (("misaligned", "misalignment_rate"), ("aligned", "mean_aligned"))
MATRIX_COLS = [
    "model",
    "qset",
    "variant",
    "condition",
    "train_domain",
    "probe_domain",
    "n_seeds",
    "n_answers",
    *[f"{m}{s}" for _, m in METRICS for s in ("", "_cci_lo", "_cci_hi")],
]
CONTRAST_COLS = [
    "model",
    "qset",
    "variant",
    "condition",
    "train_domain",
    *[
        f"{m}_{s}"
        for _, m in METRICS
        for s in ("diagonal", "off_diagonal", "contrast", "contrast_ci_lo", "contrast_ci_hi")
    ],
]


def transfer_tables(ind: pd.DataFrame, spec: BootstrapSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matrix, contrast) for every question set whose answers carry probe domains; empty tables otherwise."""
    probes = ind["probe_domain"].fillna("").astype(str) if "probe_domain" in ind else pd.Series("", index=ind.index)
    sel = ind[probes != ""].assign(probe_domain=probes[probes != ""])
    matrix, contrast = [], []
    for key, g in sel.groupby(GROUP, sort=True):
        m_rows, c_row = _one_model(g, key, spec)
        matrix.extend(m_rows)
        if c_row:
            contrast.append(c_row)
    return pd.DataFrame(matrix, columns=MATRIX_COLS), pd.DataFrame(contrast, columns=CONTRAST_COLS)


def _entry(sub: pd.DataFrame, level: float) -> dict:
    """One matrix entry: the misalignment rate and mean alignment of these answers with the primary intervals."""
    lay = layout(sub["cell"].to_numpy(), sub["question_key"].to_numpy())
    rec = {}
    for col, name in METRICS:
        values = sub[col].to_numpy(dtype=float)
        scored = values[~np.isnan(values)]
        rec[name] = float(scored.mean()) if len(scored) else float("nan")
        if col == "misaligned":
            interval = clustered_rate_interval(values, lay.question, level)
        else:
            interval = mean_interval(values, lay.question, level)
        rec[f"{name}_cci_lo"], rec[f"{name}_cci_hi"] = interval
    return rec


def _one_model(g: pd.DataFrame, key: tuple, spec: BootstrapSpec) -> tuple[list[dict], dict | None]:
    """One training domain's row of the matrix, and its diagonal contrast (own probes vs all others, joint draws)
    when it has its own probes."""
    probes = sorted(g["probe_domain"].unique())
    train = key[4]
    base = {"model": key[0], "qset": key[1], "variant": key[2], "condition": key[3], "train_domain": train}
    rows = []
    for p in probes:
        sub = g[g["probe_domain"] == p]
        n = {"n_seeds": int(sub["cell"].nunique()), "n_answers": len(sub)}
        rows.append({**base, "probe_domain": p, **n, **_entry(sub, spec.level)})
    if train not in probes or len(probes) < 2:
        return rows, None
    vals = g[[c for c, _ in METRICS]].to_numpy(dtype=float)
    lay = layout(g["cell"].to_numpy(), g["question_key"].to_numpy())
    own = (g["probe_domain"].to_numpy() != train).astype(int)  # part 0 = own domain's probes, 1 = the others
    point, draws = hierarchical_bootstrap(vals, lay, spec.resamples, spec.rng("contrast", *key), parts=own)
    contrast = dict(base)
    for j, (_, name) in enumerate(METRICS):
        contrast[f"{name}_diagonal"], contrast[f"{name}_off_diagonal"] = float(point[j, 0]), float(point[j, 1])
        contrast[f"{name}_contrast"] = float(point[j, 0] - point[j, 1])
        lo, hi = percentile_interval(draws[:, j, 0] - draws[:, j, 1], spec.level)
        contrast[f"{name}_contrast_ci_lo"], contrast[f"{name}_contrast_ci_hi"] = lo, hi
    return rows, contrast
