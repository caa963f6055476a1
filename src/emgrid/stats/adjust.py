"""Multiple-testing adjustment: one p-value per domain row is tested at once, so raw p-values overstate evidence.

Holm (1979) controls the family-wise error rate; Benjamini-Hochberg (1995) the false discovery rate. NaN p-values
(untestable rows) stay NaN and do not count towards the number of tests.
"""

from __future__ import annotations

import numpy as np


def _finite(p) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(p, dtype=float)
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {arr[(arr < 0) | (arr > 1)][:3]}")
    return arr, np.flatnonzero(~np.isnan(arr))


def holm_adjust(p) -> np.ndarray:
    """Holm step-down adjusted p-values: the i-th smallest of m is max over j <= i of min(1, (m - j) * p_(j))."""
    arr, ok = _finite(p)
    out = np.full(arr.shape, np.nan)
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(arr[ok], kind="stable")]
    scaled = (m - np.arange(m)) * arr[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: min over j >= i of m * p_(j) / j, capped at 1."""
    arr, ok = _finite(p)
    out = np.full(arr.shape, np.nan)
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(arr[ok], kind="stable")]
    scaled = arr[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out
