"""Coverage of the trigger effect's intervals by simulation, through the library functions the aggregate calls:
the paired effect of one cell (misalignment rate) and the mean drop over domains when the trigger's effect on each
question is shared by every domain (issue 21, item 2). Target: 93-97.5 % at a nominal 95 %."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from emgrid.stats import layout
from emgrid.stats.paired import mean_effect_interval, paired_effect

GH_X, GH_W = np.polynomial.hermite_e.hermegauss(40)
GH_W = GH_W / GH_W.sum()
EXPERIMENTS = 1000  # Monte Carlo standard error 0.7 points
#: The paired effect: standard error 0.35 points (at 1,000 experiments two designs whose coverage is 94.4 % read 92.2 and
#: 92.7 % with this file's seeds: chance, not the method).
EFFECT_EXPERIMENTS = 4000


def _design(seeds: int, questions: int, answers: int):
    s, q, t = np.meshgrid(np.arange(seeds), np.arange(questions), [0, 1], indexing="ij")
    return tuple(np.repeat(x.ravel(), answers) for x in (s, q, t))


def _rate_effect_coverage(seeds, questions, answers, rng, mu=-2.2, sd=1.0, gamma=0.5, effect_sd=0.5) -> float:
    """One cell; question effect u ~ N(0, sd) and trigger effect g ~ N(gamma, effect_sd) on the logit scale (seed
    effects N(0, 0.3)). Estimand: the mean over the question population of p(trigger) - p(no trigger), per seed
    as trained, averaged over the seeds."""
    s, q, t = _design(seeds, questions, answers)
    lay = layout(s, q)
    u2, g2 = np.meshgrid(sd * GH_X, gamma + effect_sd * GH_X, indexing="ij")
    w2 = np.outer(GH_W, GH_W)
    hits = 0
    for _ in range(EFFECT_EXPERIMENTS):
        v = rng.normal(0, 0.3, seeds) if seeds > 1 else np.zeros(1)
        theta = np.mean([((expit(mu + vs + u2 + g2) - expit(mu + vs + u2)) * w2).sum() for vs in v])
        u, g = rng.normal(0, sd, questions), rng.normal(gamma, effect_sd, questions)
        y = (rng.random(len(s)) < expit(mu + v[s] + u[q] + g[q] * t)).astype(float)
        eff = paired_effect(y, t.astype(bool), lay, rng, resamples=20, permutations=1)
        hits += eff.ci_lo <= theta <= eff.ci_hi
    return hits / EFFECT_EXPERIMENTS


@pytest.mark.parametrize("seeds,questions,answers", [(1, 8, 50), (1, 44, 5), (3, 8, 10), (3, 20, 10)])
@pytest.mark.slow
def test_the_paired_effect_interval_covers_the_question_population_effect(seeds, questions, answers):
    coverage = _rate_effect_coverage(seeds, questions, answers, np.random.default_rng(seeds * 1000 + questions))
    print(f"\n{seeds} seeds x {questions} questions x {answers} answers: paired effect coverage {coverage:.1%}")
    assert 0.93 <= coverage <= 0.975


def _mean_drop_coverage(domains, questions, answers, rng, shared_sd=4.0) -> float:
    """`domains` trained models (one seed each) answer the same questions; alignment = 70 + question effect (sd 10,
    shared) + domain offset + trigger x (domain's effect + a per-question effect shared by every domain, sd
    `shared_sd`) + answer noise (sd 20). Estimand: the mean over domains of each domain's effect on the question
    population (the domains as trained)."""
    s, q, t = _design(1, questions, answers)
    lay = layout(s, q)
    hits = 0
    for _ in range(EXPERIMENTS):
        u, g = rng.normal(0, 10, questions), rng.normal(0, shared_sd, questions)
        gamma = rng.normal(-5, 3, domains)
        effects = []
        for d in range(domains):
            y = 70 + u[q] + rng.normal(0, 5) + t * (gamma[d] + g[q]) + rng.normal(0, 20, len(q))
            effects.append(paired_effect(y, t.astype(bool), lay, rng, resamples=20, permutations=1))
        lo, hi = mean_effect_interval(effects)
        hits += lo <= gamma.mean() <= hi
    return hits / EXPERIMENTS


@pytest.mark.slow
@pytest.mark.parametrize("questions,answers", [(8, 50), (44, 5)])
def test_the_mean_drop_interval_covers_with_a_trigger_effect_shared_by_every_domain(questions, answers):
    coverage = _mean_drop_coverage(9, questions, answers, np.random.default_rng(questions))
    print(f"\n9 domains x {questions} questions x {answers} answers: mean-drop coverage {coverage:.1%}")
    assert 0.93 <= coverage <= 0.975


def test_the_paired_test_keeps_its_size_when_the_effect_varies_by_question_across_seeds():
    """Three seeds answer the same 20 questions; the trigger moves each question's alignment by its own amount
    (sd 5 points, shared by the seeds) with mean 0 over questions. A test of the mean effect must reject about 5 %
    of the time at alpha 0.05: flipping the (seed, question) pairs' signs separately treated a question's three
    pairs as independent evidence and rejected 10 % of the time; flipping each question's mean pair difference keeps
    the size (the question is the sampling unit, as in the interval)."""
    seeds, questions, answers = 3, 20, 10
    s, q, t = _design(seeds, questions, answers)
    lay = layout(s, q)
    rng = np.random.default_rng(11)
    runs, rejected = 400, 0
    for _ in range(runs):
        effect = rng.normal(0, 5, questions)
        y = 70 + effect[q] * t + rng.normal(0, 20, len(s))
        rejected += paired_effect(y, t.astype(bool), lay, rng, resamples=2, permutations=400).p_value < 0.05
    assert 0.025 <= rejected / runs <= 0.075, rejected / runs
