"""Cluster-robust intervals over questions with t quantiles: the primary interval of a cell's rates and mean scores.

Estimand: the cell's rate (or mean score) over the population of evaluation questions, for the trained model(s) at
hand — the question set is a sample from the questions one could ask, the seeds are the models that were trained.
Seed-to-seed variation is therefore not in the interval (with one seed it cannot be measured at all); a claim about
new finetunes of a domain needs several seeds and a between-seed analysis.

Every seed answers the same questions, so the question is the sampling unit: the pooled estimate (all scored
answers of the cell) gets the cluster-robust variance of a ratio estimator with questions as clusters (answers to
one question pooled over seeds), and the interval uses the t quantile with Q - 1 degrees of freedom.

Rates get a quasi-score interval (`rate_interval`): the set of rates theta with (p - theta)^2 <= t^2 V(theta), where
the variance is split in its two sources and each is carried to theta the way it scales — the answers' binomial
noise within a question like theta(1 - theta) (Wilson's score interval) and the spread of the questions' own rates
by the larger of theta(1 - theta) (an overdispersed binomial) and [theta(1 - theta)]^2 (a constant spread on the
logit scale). Both parts are measured at p: the within part from each question's binomial variance, the between part
as what the cluster-robust variance leaves. Why: a symmetric logit-scale t interval (emgrid's primary interval on
2026-12-04) was too long upward where answers' own noise dominates (a rare behaviour with few answers per question:
up to 98.6 % coverage), and raw-scale ones are too short upward where a few questions carry the behaviour; the score
form follows each source's skew. The between part by the logit model alone (primary 2026-12-05/06) covered 91.8-93 %
with a strongly skewed question distribution and many answers per question; the larger of the two models covers 94.1 %
or more in every design of the bench, 97.8 % at most where counts are coarse (4,000 experiments, docs/statistics.md).

Mean scores get a two-part interval (`mean_interval`): a mean alignment's skew is the skew of its share of low
answers, so that share goes through the rate interval's variance function and is mapped to the mean through the
two sides' mean scores (the symmetric t interval before it covered 88-93 % in 27 of the 108 designs).
`bench/bench_coverage.py` measures the methods side by side, design by design (docs/statistics.md).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm
from scipy.stats import t as tdist

from emgrid.stats.intervals import wilson_interval


def _by_question(values: np.ndarray, questions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the scored values per question (questions without a scored value dropped)."""
    ok = ~np.isnan(values)
    codes, inverse = np.unique(questions[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=values[ok], minlength=len(codes))
    counts = np.bincount(inverse, minlength=len(codes)).astype(float)
    return sums, counts


def ratio_estimate(values, questions) -> tuple[float, float, int]:
    """(pooled mean, its cluster-robust variance, number of questions): the CR1 variance of a ratio estimator,
    Q / (Q - 1) * sum_q (y_q - p n_q)^2 / N^2, which with equal answers per question is var(question means) / Q."""
    v, q = np.asarray(values, dtype=float), np.asarray(questions)
    sums, counts = _by_question(v, q)
    n_q, total = len(counts), counts.sum()
    if n_q == 0:
        return math.nan, math.nan, 0
    p = float(sums.sum() / total)
    if n_q < 2:
        return p, math.nan, n_q
    var = n_q / (n_q - 1) * float(((sums - p * counts) ** 2).sum()) / total**2
    return p, var, n_q


def t_quantile(n_questions: int, level: float) -> float:
    return float(tdist.ppf((1 + level) / 2, n_questions - 1))


def within_variance(values, questions) -> float:
    """The part of the pooled rate's variance that is the answers' binomial noise within their question (values 0/1,
    NaN = not scored): sum over questions of n_q^2 p_q (1 - p_q) / (n_q - 1), over N^2 (unbiased per question). A
    question with one scored answer adds nothing here; its variation is left to the between-question part."""
    sums, counts = _by_question(np.asarray(values, dtype=float), np.asarray(questions))
    many = counts > 1
    if counts.sum() == 0:
        return math.nan
    p_q = sums[many] / counts[many]
    return float((counts[many] ** 2 * p_q * (1 - p_q) / (counts[many] - 1)).sum() / counts.sum() ** 2)


def score_variance(p: float, var: float, within: float):
    """The variance at a hypothesised rate theta, from the cluster-robust variance `var` at p and its within-question
    part: W r + B max(r, r^2), r = theta(1 - theta) / (p(1 - p)), B = var - W. The within part scales like a binomial
    variance; the between part by the larger of the two usual models of how questions' rates spread around a mean
    rate, an overdispersed binomial (r) and a constant spread on the logit scale (r^2): one sample of questions cannot
    tell them apart, and each alone under-covers somewhere (r^2 alone where a heavy question inflates p: its lower
    side shrank with r^2). r is the larger where theta is farther from 1/2 than p (below p, for a rate under 1/2), r^2
    where it is nearer. Needs 0 < p < 1."""
    within = min(within, var)
    between = var - within
    scale = p * (1 - p)

    def at(theta: float) -> float:
        r = theta * (1 - theta) / scale
        return within * r + between * max(r, r * r)

    return at


def quasi_score_interval(p: float, var: float, within: float, n_q: int, level: float) -> tuple[float, float]:
    """{theta in [0, 1] : (p - theta)^2 <= t^2 V(theta)}, V = `score_variance`; t with Q - 1 degrees of freedom.
    Needs 0 < p < 1 and var > 0."""
    variance = score_variance(p, var, within)
    t2 = t_quantile(n_q, level) ** 2

    def outside(theta: float) -> float:  # > 0 outside the interval, < 0 inside (at theta = p: -t^2 var)
        return (p - theta) ** 2 - t2 * variance(theta)

    return float(brentq(outside, 0.0, p, xtol=1e-12)), float(brentq(outside, p, 1.0, xtol=1e-12))


def rate_interval(values, questions, level: float = 0.95) -> tuple[float, float]:
    """The quasi-score interval of a rate (values 0/1, NaN = not scored), from the cluster-robust variance at p and its
    within-question (binomial) part; (nan, nan) where it is not defined (fewer than two questions, a rate of 0 or 1,
    or no variation between questions): the caller decides."""
    p, var, n_q = ratio_estimate(values, questions)
    if not (n_q >= 2 and 0 < p < 1 and var > 0):
        return math.nan, math.nan
    return quasi_score_interval(p, var, within_variance(values, questions), n_q, level)


def boundary_rate_interval(rate: float, n_clusters: int, level: float) -> tuple[float, float]:
    """Where the quasi-score interval is not defined — a rate of exactly 0 or 1, one question, or no variation
    between questions — the interval is Wilson's on the number of clusters (the questions, or an efficacy cell's
    prompts), the effective sample size when answers within a cluster are fully correlated (the design effect is not
    estimable without any variation): 0 of 8 questions x 50 answers reads [0, 32.4 %], never [0, 0]. With several
    seeds the clusters are still the questions, not the (seed, question) pairs: every seed answers the same questions,
    so a behaviour carried by some questions is missed by all seeds alike (Wilson's on 3 x 8 pairs, 13.8 %, missed
    a rate of 25 % in 2.8 % of cells where a quarter of the questions carry it: bench_coverage --zero-bounds)."""
    if not (np.isfinite(rate) and n_clusters > 0):
        return (float("nan"), float("nan"))
    return wilson_interval(rate * n_clusters, n_clusters, z=float(norm.ppf((1 + level) / 2)))


def clustered_rate_interval(values, questions, level: float = 0.95) -> tuple[float, float]:
    """The primary interval of a rate: `rate_interval`, or `boundary_rate_interval` on the questions with a scored
    answer where that is not defined."""
    lo, hi = rate_interval(values, questions, level)
    if np.isfinite(lo):
        return lo, hi
    p, _, n_q = ratio_estimate(values, questions)
    return boundary_rate_interval(p, n_q, level)


def _share_variance(low: np.ndarray, questions):
    """The variance function of a share (the rate interval's: within part x r + between part x r^2, both measured at
    the observed share), as a function of the share; Wilson's on the questions where the observed share is 0 or 1 or
    equal on every question (the rate interval's boundary rule)."""
    share, var, n_q = ratio_estimate(low, questions)
    if 0 < share < 1 and var > 0:
        return share, score_variance(share, var, within_variance(low, questions))
    return share, lambda x: x * (1 - x) / max(n_q, 1)


def mean_interval(
    values, questions, level: float = 0.95, bounds: tuple[float, float] = (0.0, 100.0)
) -> tuple[float, float]:
    """The two-part interval of a mean score bounded by `bounds`; (nan, nan) with fewer than two questions.

    A mean alignment is mostly the aligned answers' level minus the share of low answers times the gap to the low
    answers' level, so its skew is that share's skew (and a small sample often holds no low answer at all). The mean
    is written m = U - (U - L) pi: pi the share of scores below the range's midpoint, U and L the mean score above and
    below it (the bounds where a side is empty). The interval is every theta with (m - theta)^2 <= t^2 ((U - L)^2
    v(pi(theta)) + R): v the share's variance function of the rate interval (its within and between parts at pi,
    Wilson's on the questions where pi is 0 or 1), pi(theta) = (U - theta) / (U - L) clipped to [0, 1], and R what
    the cluster-robust variance of m leaves beyond the share's part (the levels' own noise)."""
    v, q = np.asarray(values, dtype=float), np.asarray(questions)
    m, var, n_q = ratio_estimate(v, q)
    if not (n_q >= 2 and np.isfinite(var)):
        return math.nan, math.nan
    mid = (bounds[0] + bounds[1]) / 2
    scored = v[~np.isnan(v)]
    high, low_vals = scored[scored >= mid], scored[scored < mid]
    top = float(high.mean()) if len(high) else bounds[1]
    gap = top - (float(low_vals.mean()) if len(low_vals) else bounds[0])
    low = np.where(np.isnan(v), np.nan, (v < mid).astype(float))
    share, share_var = _share_variance(low, q)
    rest = max(var - gap**2 * share_var(share), 0.0)
    t2 = t_quantile(n_q, level) ** 2

    def outside(theta: float) -> float:  # > 0 outside the interval
        x = min(max((top - theta) / gap, 0.0), 1.0)
        return (m - theta) ** 2 - t2 * (gap**2 * share_var(x) + rest)

    return _edge(outside, m, bounds[0]), _edge(outside, m, bounds[1])


def _edge(outside, centre: float, end: float) -> float:
    """Where `outside` turns positive going from `centre` toward `end` (`end` if it never does): the root next to the
    centre, found from a point just off it (at the centre itself `outside` may be exactly 0)."""
    if centre == end or outside(end) <= 0:
        return float(end)
    near = centre + 1e-9 * (end - centre)
    return float(brentq(outside, near, end, xtol=1e-10)) if outside(near) < 0 else float(centre)


def question_t_interval(estimate: float, per_question, level: float = 0.95) -> tuple[float, float]:
    """`estimate` +- t(Q - 1) x sd(per_question) / sqrt(Q): the interval of a mean over questions of question-level
    values (a trigger effect's per-question differences, their differences between two models, their mean over
    domains); (nan, nan) with fewer than two questions or no variation between them (the caller falls back)."""
    v = np.asarray(per_question, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2 or not np.isfinite(estimate):
        return math.nan, math.nan
    sd = float(v.std(ddof=1))
    if sd == 0:
        return math.nan, math.nan
    half = t_quantile(len(v), level) * sd / math.sqrt(len(v))
    return estimate - half, estimate + half
