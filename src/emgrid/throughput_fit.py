"""The fit of a GPU job's seconds on the terms of `emgrid.throughput_model` from recorded runs (emgrid.throughput
reads the runs' throughput lines and calls `fit_terms` per rule, device and dtype).

A term is fitted only when the recorded runs vary it independently of the terms before it (`_independent`):
otherwise its effect cannot be told apart (e.g. every run used q/v, so the cost of all-linear is unknown) and it is
left out, i.e. taken as zero. The coefficients are non-negative least squares on relative errors, so short jobs
count as much as long ones.

Its own module because it needs scipy (`nnls`) and the term definitions do not: the planner's per-job estimates are
imported on every parse of the workflow (through `emgrid.gridspec`), the fit only where recorded runs are read.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.optimize import nnls

from emgrid.throughput_model import TERMS, TermModel, term_values

# A term enters the fit only when at least this share of its (relative) variation is not explained by the terms
# already in: below it, its coefficient would be noise.
MIN_INDEPENDENT = 0.05


def _independent(columns: list[np.ndarray], candidate: np.ndarray) -> bool:
    """Whether `candidate` varies beyond what `columns` explain (by MIN_INDEPENDENT of its norm)."""
    if not candidate.any():
        return False
    if not columns:
        return True
    a = np.stack(columns, axis=1)
    resid = candidate - a @ np.linalg.lstsq(a, candidate, rcond=None)[0]
    return float(np.linalg.norm(resid)) > MIN_INDEPENDENT * float(np.linalg.norm(candidate))


def fit_terms(samples: list[tuple[float, float, Mapping]]) -> TermModel:
    """Non-negative least squares of seconds on the terms the samples (seconds, tokens, features) vary
    independently, at most one term per sample; errors relative to each sample's seconds."""
    secs = np.array([s for s, _, _ in samples], dtype=float)
    rows = [term_values(t, f) for _, t, f in samples]
    weight = 1.0 / np.maximum(secs, 1e-9)
    chosen: list[str] = []
    cols: list[np.ndarray] = []
    for term in TERMS:
        col = np.array([r[term] for r in rows]) * weight
        if len(chosen) < len(samples) and _independent(cols, col):
            chosen.append(term)
            cols.append(col)
    if not chosen:
        return TermModel({})
    a = np.stack(cols, axis=1)
    scale = np.linalg.norm(a, axis=0)  # columns of very different magnitude: solve on unit columns
    coef, _ = nnls(a / scale, secs * weight)
    return TermModel({t: float(c / s) for t, c, s in zip(chosen, coef, scale) if c > 0})
