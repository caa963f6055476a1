"""Cluster-robust t intervals over questions: the primary interval of a cell's rates and mean scores.

Estimand: the cell's rate (or mean score) over the population of evaluation questions, for the trained model(s) at
hand — the question set is a sample from the questions one could ask, the seeds are the models that were trained.
Seed-to-seed variation is therefore not in the interval (with one seed it cannot be measured at all); a claim about
new finetunes of a domain needs several seeds and a between-seed analysis.

Every seed answers the same questions, so the question is the sampling unit: the pooled estimate (all scored
answers of the cell) gets the cluster-robust variance of a ratio estimator with questions as clusters (answers to
one question pooled over seeds), and the interval uses the t quantile with Q - 1 degrees of freedom. Rates are
handled on the logit scale (a symmetric interval there keeps the bounds inside [0, 1] and follows the skew of a
rare outcome); at a rate of exactly 0 or 1 the caller's boundary rule applies (`findings.clustered`).

Why not the hierarchical percentile bootstrap that came before: for this estimand it covered 99.5 % (median over
108 simulated designs) at a nominal 95 %, too wide by about a third, and percentile intervals under-cover with few
clusters. `bench/bench_coverage.py` measures both, design by design (docs/statistics.md).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, logit
from scipy.stats import t as tdist


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


def rate_interval(values, questions, level: float = 0.95) -> tuple[float, float]:
    """The logit-scale cluster-robust t interval of a rate (values 0/1, NaN = not scored); (nan, nan) when it is not
    defined (fewer than two questions, a rate of 0 or 1, or no variation between questions): the caller decides."""
    p, var, n_q = ratio_estimate(values, questions)
    if not (n_q >= 2 and 0 < p < 1 and var > 0):
        return math.nan, math.nan
    half = t_quantile(n_q, level) * math.sqrt(var) / (p * (1 - p))
    return float(expit(logit(p) - half)), float(expit(logit(p) + half))


def mean_interval(values, questions, level: float = 0.95, bounds: tuple[float, float] = (0.0, 100.0)):
    """The cluster-robust t interval of a mean score, clipped to the score's range; (nan, nan) with fewer than two
    questions."""
    p, var, n_q = ratio_estimate(values, questions)
    if not (n_q >= 2 and np.isfinite(var)):
        return math.nan, math.nan
    half = t_quantile(n_q, level) * math.sqrt(var)
    return max(bounds[0], p - half), min(bounds[1], p + half)


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
