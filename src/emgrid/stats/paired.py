"""The trigger effect as a paired difference within (seed, question) pairs.

Every triggered answer has an untriggered counterpart from the same trained model (seed) to the same question, so
the effect is computed within those pairs: d = mean(trigger answers) - mean(no-trigger answers) per (seed,
question), averaged over pairs with equal weight. This removes the between-question and between-seed variation that
an unpaired test of pooled answers counts as noise, and does not treat answers as independent.

- Interval: a t interval over questions (`emgrid.stats.cluster_t.question_t_interval`): each question's mean pair
  difference (pooled over seeds, which answer the same questions) is one observation, Q - 1 degrees of freedom; its
  estimand is the effect over the population of questions for the trained model(s). The cluster bootstrap (seeds,
  then questions, then answers within each pair's two conditions) is kept for its draws and as the fallback with
  fewer than two questions; as the interval it covered 99-100 % at a nominal 95 % (docs/statistics.md).
- Test: sign-flip permutation over questions, the interval's unit: each question's mean pair difference (over the
  seeds) is as likely to have either sign under the sharp null that the trigger changes nothing, and under a mean
  effect of 0 whose question-level effects are spread symmetrically; the p-value is the share of sign flips whose
  |mean| reaches the observed one (exact enumeration for <= 2^Q questions when that is fewer than the requested
  permutations). Not over (seed, question) pairs: a question's seeds share its effect, and flipping their pairs
  separately counted them as independent evidence (3 seeds x 20 questions, an effect varying by question with mean
  0: 10.75 % false positives at alpha 0.05; over questions 5.5 %, tests/test_effect_coverage.py).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np

from emgrid.stats.bootstrap import ClusterLayout, QuestionDraws, cluster_sums, cluster_weights, percentile_interval
from emgrid.stats.cluster_t import question_t_interval


@dataclass(frozen=True)
class PairedEffect:
    """A paired effect: estimate, interval, sign-flip p-value, pairs used, the bootstrap draws, and each question's
    mean pair difference (labels and values), from which intervals of contrasts and means of effects are made."""

    estimate: float
    ci_lo: float
    ci_hi: float
    p_value: float
    n_pairs: int
    draws: np.ndarray
    questions: tuple[str, ...] = ()
    question_diffs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def by_question(self) -> dict[str, float]:
        return dict(zip(self.questions, self.question_diffs.tolist()))


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
    labels, q_diffs = _question_diffs(d, np.flatnonzero(ok) % lay.n_questions, lay)
    lo, hi = question_t_interval(float(d.mean()), q_diffs, level)
    if not np.isfinite(lo):
        lo, hi = percentile_interval(draws, level)
    p = sign_flip_pvalue(q_diffs, permutations, rng)
    return PairedEffect(float(d.mean()), lo, hi, p, int(ok.sum()), draws, labels, q_diffs)


def _question_diffs(d: np.ndarray, question: np.ndarray, lay: ClusterLayout) -> tuple[tuple[str, ...], np.ndarray]:
    """Each question's mean of its pairs' differences (over the seeds that have the pair), labelled as the layout's
    questions are (so two effects on the same questions line up)."""
    codes = np.unique(question)
    means = np.array([d[question == c].mean() for c in codes])
    names = lay.question_labels or tuple(str(i) for i in range(lay.n_questions))
    return tuple(str(names[c]) for c in codes), means


def _aligned(effects: list["PairedEffect"]) -> np.ndarray:
    """(questions, effects) of question-level differences on the questions every effect has."""
    common = set(effects[0].questions).intersection(*(e.questions for e in effects[1:]))
    order = sorted(common)
    maps = [e.by_question() for e in effects]
    return np.array([[m[q] for m in maps] for q in order]).reshape(len(order), len(effects))


def mean_effect_interval(effects: list["PairedEffect"], level: float = 0.95) -> tuple[float, float]:
    """Interval of the mean of several effects measured on the same questions (the domains of one model x question
    set): per question the mean of the effects' question-level differences is one observation, so a question
    effect the domains share counts once, as it should; falls back to the mean of the joint bootstrap draws."""
    estimate = float(np.mean([e.estimate for e in effects]))
    lo, hi = question_t_interval(estimate, _aligned(effects).mean(axis=1), level)
    if np.isfinite(lo):
        return lo, hi
    with warnings.catch_warnings():  # a resample where every effect's draw is NaN stays NaN, and is dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        return percentile_interval(np.nanmean(np.stack([e.draws for e in effects], axis=1), axis=1), level)


def sign_flip_pvalue(diffs: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p-value of mean(diffs) = 0 (one diff per independent unit: a question); NaN
    without diffs, 1 when every diff is 0.

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
    if _enumerates(n, permutations):
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d) / n >= observed - tol))
    signs = rng.integers(0, 2, size=(permutations, n)) * 2.0 - 1.0
    hits = int(np.sum(np.abs(signs @ d) / n >= observed - tol))
    return (1 + hits) / (1 + permutations)


def sign_flip_floor(n: int, permutations: int) -> float:
    """The smallest p-value `sign_flip_pvalue` can give for `n` diffs (questions): 2 / 2^n where it enumerates every
    sign pattern (the observed one and its mirror reach it), 1 / (1 + permutations) where it draws them; NaN without
    diffs. A p-value floor above a correction's threshold means no result can pass it, whatever the data."""
    if n < 1:
        return float("nan")
    return 2.0 / 2**n if _enumerates(n, permutations) else 1.0 / (1 + permutations)


def _enumerates(n: int, permutations: int) -> bool:
    """Whether the sign-flip test enumerates all 2^n sign patterns of n diffs (no more than the flips asked for)
    instead of drawing `permutations` of them: the one rule behind its p-values and their floor."""
    return 2**n <= permutations


def effect_difference(a: PairedEffect, b: PairedEffect, level: float = 0.95) -> tuple[float, float, float]:
    """Difference in differences a - b of two effects measured on independent models that answered the same
    questions (e.g. backdoor vs plain, or backdoor vs base): the estimate and the t interval over questions of the
    question-level differences (the percentile interval of the bootstrap draws' differences as the fallback)."""
    est = a.estimate - b.estimate
    pairs = _aligned([a, b])
    lo, hi = question_t_interval(est, pairs[:, 0] - pairs[:, 1], level)
    if not np.isfinite(lo):
        lo, hi = percentile_interval(a.draws - b.draws, level)
    return (est, lo, hi)
