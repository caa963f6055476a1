"""Small-sample statistics for rates: Wilson score intervals and Newcombe's difference interval.

Misalignment rates are often near 0 or 1 with a few hundred answers per cell; the Wilson interval stays inside [0, 1]
and keeps its coverage there, where the normal (Wald) interval collapses to zero width.
"""

from __future__ import annotations

import math


def wilson_interval(k: int | float, n: int | float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes out of n trials; (nan, nan) when n == 0 (no data, no interval)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp float noise: the interval stays inside [0, 1] and always contains p (k == n gives hi exactly 1).
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def newcombe_diff_interval(
    k1: int | float, n1: int | float, k2: int | float, n2: int | float, z: float = 1.96
) -> tuple[float, float]:
    """Interval for p1 - p2 from two independent Wilson intervals (Newcombe 1998, method 10).

    Used for the trigger effect on the misalignment rate: unlike the Wald difference it behaves at rates of 0 or 1.
    (nan, nan) when either sample is empty.
    """
    if n1 == 0 or n2 == 0:
        return (math.nan, math.nan)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (lo, hi)
