"""Multiple-testing adjustment: one p-value per domain row is tested at once, so raw p-values overstate evidence.

Holm (1979) controls the family-wise error rate; Benjamini-Hochberg (1995) the false discovery rate. NaN p-values
(untestable rows) stay NaN and do not count towards the number of tests.
"""

from __future__ import annotations

import numpy as np

#: The significance level adjusted p-values are compared with when no `analysis.alpha` is given (the config
#: schema's default; tests/test_defaults.py keeps the two equal).
DEFAULT_ALPHA = 0.05


def _adjust(p, scale) -> np.ndarray:
    """Sort the finite p-values, apply `scale(sorted_p, m)` (a monotone step-down/step-up rule), scatter back."""
    arr = np.asarray(p, dtype=float)
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {arr[(arr < 0) | (arr > 1)][:3]}")
    ok = np.flatnonzero(~np.isnan(arr))
    out = np.full(arr.shape, np.nan)
    if len(ok):
        order = ok[np.argsort(arr[ok], kind="stable")]
        out[order] = np.minimum(1.0, scale(arr[order], len(ok)))
    return out


def holm_adjust(p) -> np.ndarray:
    """Holm step-down adjusted p-values: the i-th smallest of m is max over j <= i of min(1, (m - j) * p_(j))."""
    return _adjust(p, lambda ps, m: np.maximum.accumulate((m - np.arange(m)) * ps))


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: min over j >= i of m * p_(j) / j, capped at 1."""
    return _adjust(p, lambda ps, m: np.minimum.accumulate((ps * m / np.arange(1, m + 1))[::-1])[::-1])
