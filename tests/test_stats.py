"""Statistics: hierarchical bootstrap coverage by simulation, paired trigger test size and power, Holm/BH, ranks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control
from scipy.stats import t as scipy_t

from emgrid.errors import ConfigError
from emgrid.stats import (
    BootstrapSpec,
    bh_adjust,
    hierarchical_bootstrap,
    holm_adjust,
    layout,
    percentile_interval,
    rank_intervals,
    wilson_interval,
)
from emgrid.stats.paired import effect_difference, paired_effect, sign_flip_pvalue
from emgrid.stats.bootstrap import cluster_sums, cluster_weights

N_SEEDS, N_QUESTIONS, N_ANSWERS = 3, 20, 5
TRUE_RATE = 0.3


def simulate(rng, shift=0.0, *, seed_sd=0.05, question_sd=0.12):
    """One experiment with known truth: answer rate = TRUE_RATE + seed effect + question effect (+ shift when
    triggered). Effects are uniform with mean zero, so the population rate is exactly TRUE_RATE; the question effect is
    shared by all seeds (every seed answers the same questions), as in a real grid.

    Returns (misaligned 0/1 per answer, seed label, question label, triggered flag), both conditions."""
    h = np.sqrt(3)
    a = rng.uniform(-h, h, N_SEEDS) * seed_sd
    b = rng.uniform(-h, h, N_QUESTIONS) * question_sd
    s, q, t = np.meshgrid(np.arange(N_SEEDS), np.arange(N_QUESTIONS), [0, 1], indexing="ij")
    s, q, t = (np.repeat(x.ravel(), N_ANSWERS) for x in (s, q, t))
    p = np.clip(TRUE_RATE + a[s] + b[q] + shift * t, 0, 1)
    return (rng.random(len(p)) < p).astype(float), s, q, t.astype(bool)


@pytest.mark.slow  # simulations
def test_clustered_interval_covers_true_rate_wilson_does_not():
    rng = np.random.default_rng(1)
    n_exp, hits_boot, hits_wilson = 200, 0, 0
    for _ in range(n_exp):
        y, s, q, t = simulate(rng)
        y, s, q = y[~t], s[~t], q[~t]
        point, draws = hierarchical_bootstrap(y, layout(s, q), 500, rng)
        lo, hi = percentile_interval(draws)
        hits_boot += lo <= TRUE_RATE <= hi
        wl, wh = wilson_interval(y.sum(), len(y))
        hits_wilson += wl <= TRUE_RATE <= wh
    print(
        f"\ncoverage of the true rate over {n_exp} simulated experiments ({N_SEEDS} seeds x {N_QUESTIONS} questions"
        f" x {N_ANSWERS} answers): clustered bootstrap {hits_boot / n_exp:.1%}, Wilson {hits_wilson / n_exp:.1%}"
    )
    assert hits_boot / n_exp >= 0.90
    assert hits_wilson < hits_boot


def test_paired_test_holds_its_size_and_detects_a_planted_effect():
    rng = np.random.default_rng(2)
    n_null, false_pos, ps = 200, 0, []
    for _ in range(n_null):
        y, s, q, t = simulate(rng)
        eff = paired_effect(y, t, layout(s, q), rng, resamples=50, permutations=500)
        false_pos += eff.p_value < 0.05
        ps.append(eff.p_value)
    detected, covered = 0, 0
    for _ in range(50):
        y, s, q, t = simulate(rng, shift=0.15)
        eff = paired_effect(y, t, layout(s, q), rng, resamples=300, permutations=500)
        detected += eff.p_value < 0.05
        covered += eff.ci_lo <= 0.15 <= eff.ci_hi
    print(
        f"\npaired sign-flip test: false-positive rate {false_pos / n_null:.1%} at alpha 0.05 over {n_null} nulls; "
        f"planted +0.15 detected in {detected}/50, its interval covers it in {covered}/50"
    )
    assert false_pos / n_null <= 0.07
    assert detected >= 45
    assert covered >= 42


def test_bootstrap_point_and_fixed_draws():
    y = np.array([1, 0, np.nan, 1, 1, 0, 0, 0])
    lay = layout(["0", "0", "0", "0", "1", "1", "1", "1"], ["a", "a", "b", "b", "a", "a", "b", "b"])
    point, d1 = hierarchical_bootstrap(y, lay, 200, np.random.default_rng(0))
    assert point == pytest.approx(3 / 7)
    _, d2 = hierarchical_bootstrap(y, lay, 200, np.random.default_rng(0))
    np.testing.assert_array_equal(d1, d2)
    assert 0 <= np.nanmin(d1) and np.nanmax(d1) <= 1
    # seeds and questions are the resampled units: a constant-within-cluster table still varies
    assert np.nanstd(d1) > 0


def test_cluster_weights_and_sums_by_hand():
    lay = layout([0, 0, 1, 1], ["a", "b", "a", "b"])
    w = cluster_weights(np.random.default_rng(3), lay, 1000)
    assert w.shape == (1000, 4)
    # each resample draws 2 seeds x 2 questions = 4 (seed, question) cells in all
    np.testing.assert_array_equal(w.sum(1), 4)
    assert w.mean(0) == pytest.approx([1, 1, 1, 1], abs=0.1)
    s, n = cluster_sums(None, np.array([1.0, np.nan, 3.0, 4.0, 5.0]), np.array([0, 0, 1, 3, 3]), 4, 1)
    np.testing.assert_array_equal(s, [[1, 3, 0, 9]])
    np.testing.assert_array_equal(n, [[1, 1, 0, 2]])
    s, n = cluster_sums(np.random.default_rng(0), np.array([2.0, 2.0, 7.0]), np.array([1, 1, 0]), 2, 50)
    np.testing.assert_array_equal(s, np.tile([7.0, 4.0], (50, 1)))  # resampling within constant clusters


def test_paired_effect_by_hand():
    # two seeds x two questions, one answer per condition: differences (seed, question) = -10, -30, 0, -20
    y = np.array([50, 40, 80, 50, 60, 60, 70, 50], dtype=float)
    t = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    lay = layout([0, 0, 0, 0, 1, 1, 1, 1], ["a", "a", "b", "b", "a", "a", "b", "b"])
    eff = paired_effect(y, t, lay, np.random.default_rng(0), resamples=400, permutations=2000)
    assert eff.estimate == pytest.approx(-15.0)
    assert eff.n_pairs == 4
    # the test flips questions (their seeds share them): question means -5 and -25, 4 sign patterns, |mean| >= 15
    # for (-, -) and (+, +) only: 2 of 4 (flipping the 4 pairs apart gave 4 of 16, as if they were independent)
    assert eff.p_value == pytest.approx(2 / 4)
    # t over questions: question means a (-10 + 0) / 2 = -5, b (-30 - 20) / 2 = -25; sd 14.14, 1 df
    assert eff.by_question() == {"a": -5.0, "b": -25.0}
    half = scipy_t.ppf(0.975, 1) * np.std([-5.0, -25.0], ddof=1) / np.sqrt(2)
    assert (eff.ci_lo, eff.ci_hi) == (pytest.approx(-15 - half), pytest.approx(-15 + half))


def test_sign_flip_edges():
    rng = np.random.default_rng(0)
    assert np.isnan(sign_flip_pvalue(np.array([]), 100, rng))
    assert sign_flip_pvalue(np.zeros(5), 100, rng) == 1.0
    p = sign_flip_pvalue(np.full(40, -1.0), 999, rng)  # random flips: never exactly 0
    assert p == pytest.approx(1 / 1000)


def test_effect_difference_of_independent_effects():
    rng = np.random.default_rng(4)
    y1, s, q, t = simulate(rng, shift=0.2)
    y0, *_ = simulate(rng)
    lay = layout(s, q)
    a = paired_effect(y1, t, lay, rng, resamples=400)
    b = paired_effect(y0, t, lay, rng, resamples=400)
    est, lo, hi = effect_difference(a, b)
    assert est == pytest.approx(a.estimate - b.estimate)
    assert lo < 0.2 < hi and lo < est < hi
    # the two models answered the same questions: the t interval of the question-level differences, by hand
    qa, qb = a.by_question(), b.by_question()
    diffs = [qa[k] - qb[k] for k in sorted(qa)]
    half = scipy_t.ppf(0.975, len(diffs) - 1) * np.std(diffs, ddof=1) / np.sqrt(len(diffs))
    assert (lo, hi) == (pytest.approx(est - half), pytest.approx(est + half))


def test_holm_against_hand_table():
    # m = 5: sorted p 0.01, 0.02, 0.03, 0.04, 0.2 -> x5, x4, x3, x2, x1 = 0.05, 0.08, 0.09, 0.08->0.09, 0.2
    p = [0.04, 0.01, np.nan, 0.2, 0.03, 0.02]
    np.testing.assert_allclose(holm_adjust(p), [0.09, 0.05, np.nan, 0.2, 0.09, 0.08])
    assert np.isnan(holm_adjust([np.nan])).all()
    np.testing.assert_allclose(holm_adjust([0.5, 0.6]), [1.0, 1.0])


def test_bh_against_scipy():
    rng = np.random.default_rng(5)
    for _ in range(20):
        p = rng.random(rng.integers(1, 30)) ** 3
        np.testing.assert_allclose(bh_adjust(p), false_discovery_control(p, method="bh"))
    np.testing.assert_allclose(bh_adjust([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    with pytest.raises(ValueError):
        bh_adjust([1.5])


def test_rank_intervals():
    draws = np.array([[0.9, 0.5, 0.1], [0.4, 0.6, 0.1], [0.8, 0.7, np.nan]] * 10)
    lo, hi = rank_intervals(draws, level=0.95)
    np.testing.assert_array_equal(lo, [1, 1, 3])
    np.testing.assert_array_equal(hi, [2, 2, 3])


def test_rank_intervals_give_tied_items_their_shared_range():
    """Three domains at 0 % in every resample are not ranked 1-1, 2-2, 3-3 by their order: each holds 1-3."""
    lo, hi = rank_intervals(np.zeros((200, 3)), level=0.95)
    np.testing.assert_array_equal(lo, [1, 1, 1])
    np.testing.assert_array_equal(hi, [3, 3, 3])
    draws = np.tile([0.5, 0.0, 0.0, np.nan], (50, 1))  # one clear leader, two tied, one without data (last)
    lo, hi = rank_intervals(draws)
    np.testing.assert_array_equal(lo, [1, 2, 2, 4])
    np.testing.assert_array_equal(hi, [1, 3, 3, 4])


def test_bootstrap_spec_validation():
    assert BootstrapSpec.from_dict({"resamples": 10, "seed": 3}).resamples == 10
    with pytest.raises(ConfigError, match="analysis.bootstrap.resampels"):
        BootstrapSpec.from_dict({"resampels": 10})
    with pytest.raises(ConfigError, match="resamples"):
        BootstrapSpec.from_dict({"resamples": 0})
    spec = BootstrapSpec()
    assert spec.rng("a", 1).random() == spec.rng("a", 1).random() != spec.rng("a", 2).random()


def test_bootstrap_columns_and_parts():
    y = np.array([[1, 10], [0, 20], [1, np.nan], [1, 40], [0, 50], [0, 60]], dtype=float)
    lay = layout([0, 0, 0, 1, 1, 1], ["a", "a", "b", "a", "a", "b"])
    point, draws = hierarchical_bootstrap(y, lay, 100, np.random.default_rng(0))
    np.testing.assert_allclose(point, [0.5, 36.0])
    assert draws.shape == (100, 2)
    # parts by question: a -> 0, b -> 1 (constant within clusters)
    point, draws = hierarchical_bootstrap(y, lay, 100, np.random.default_rng(0), parts=np.array([0, 0, 1, 0, 0, 1]))
    np.testing.assert_allclose(point, [[0.5, 0.5], [30.0, 60.0]])
    assert draws.shape == (100, 2, 2)
    with pytest.raises(ValueError, match="constant"):
        hierarchical_bootstrap(y, lay, 10, np.random.default_rng(0), parts=np.array([0, 1, 1, 0, 0, 1]))
