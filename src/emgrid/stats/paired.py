"""The trigger effect as a paired difference within (seed, question) pairs.

Every triggered answer has an untriggered counterpart from the same trained model (seed) to the same question, so
the effect is computed within those pairs: d = mean(trigger answers) - mean(no-trigger answers) per (seed,
question), averaged over pairs with equal weight. This removes the between-question and between-seed variation that
an unpaired test of pooled answers counts as noise, and does not treat answers as independent.

- Interval: cluster bootstrap (seeds, then questions, then answers within each pair's two conditions).
- Test: sign-flip permutation over (seed, question) pairs. Under the sharp null that the trigger changes nothing,
  the two conditions of a pair are exchangeable, so each pair's difference is as likely to have either sign; the
  p-value is the share of sign flips whose |mean| reaches the observed one (exact enumeration for <= 2^k pairs when
  that is fewer than the requested permutations).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from emgrid.stats.bootstrap import ClusterLayout, QuestionDraws, cluster_sums, cluster_weights, percentile_interval


@dataclass(frozen=True)
class PairedEffect:
    """A paired effect: estimate, bootstrap interval, sign-flip p-value, pairs used, and the bootstrap draws."""

    estimate: float
    ci_lo: float
    ci_hi: float
    p_value: float
    n_pairs: int
    draws: np.ndarray


def paired_effect(
    values: np.ndarray,
    treated: np.ndarray,
    lay: ClusterLayout,
    rng: np.random.Generator,
    *,
    resamples: int = 1000,
    permutations: int = 2000,
    level: float = 0.95,
    questions: QuestionDraws | None = None,
) -> PairedEffect:
    """Effect of `treated` (True = trigger) on `values` (NaN = not scored) within the layout's clusters;
    `questions`: question draws shared with the other domains of the model x question set."""
    vals, tr = np.asarray(values, dtype=float), np.asarray(treated, dtype=bool)
    c, n_c = lay.cluster, lay.n_clusters
    s1, n1 = cluster_sums(None, vals[tr], c[tr], n_c, 1)
    s0, n0 = cluster_sums(None, vals[~tr], c[~tr], n_c, 1)
    ok = ((n1 > 0) & (n0 > 0))[0]
    d = (s1[0, ok] / n1[0, ok]) - (s0[0, ok] / n0[0, ok])
    if not ok.any():
        return PairedEffect(np.nan, np.nan, np.nan, np.nan, 0, np.full(resamples, np.nan))
    w = cluster_weights(rng, lay, resamples, questions)
    b1, m1 = cluster_sums(rng, vals[tr], c[tr], n_c, resamples)
    b0, m0 = cluster_sums(rng, vals[~tr], c[~tr], n_c, resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = (m1 > 0) & (m0 > 0)
        diff = np.where(both, b1 / np.where(m1 > 0, m1, 1) - b0 / np.where(m0 > 0, m0, 1), 0.0)
        draws = (w * diff).sum(1) / (w * both).sum(1)
    lo, hi = percentile_interval(draws, level)
    return PairedEffect(float(d.mean()), lo, hi, sign_flip_pvalue(d, permutations, rng), int(ok.sum()), draws)


def sign_flip_pvalue(diffs: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p-value of mean(diffs) = 0; NaN without pairs, 1 when every diff is 0.

    Random flips use the (1 + hits) / (1 + permutations) form, which keeps the test valid (never p = 0).
    """
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    tol = 1e-12 * max(1.0, observed)
    if 2**n <= permutations:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d) / n >= observed - tol))
    signs = rng.integers(0, 2, size=(permutations, n)) * 2.0 - 1.0
    hits = int(np.sum(np.abs(signs @ d) / n >= observed - tol))
    return (1 + hits) / (1 + permutations)


def effect_difference(a: PairedEffect, b: PairedEffect, level: float = 0.95) -> tuple[float, float, float]:
    """Difference in differences a - b of two effects measured on independent models (e.g. backdoor vs plain, or
    backdoor vs base): the estimate and the percentile interval of the paired bootstrap draws' differences."""
    lo, hi = percentile_interval(a.draws - b.draws, level)
    return (a.estimate - b.estimate, lo, hi)
