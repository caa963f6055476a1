"""Coverage of a cell's primary intervals across the designs users run, by simulation, methods side by side.

    .venv/bin/python bench/bench_coverage.py                      # rates: the whole design grid, 1,000 experiments
    .venv/bin/python bench/bench_coverage.py --experiments 300 --methods bootstrap wilson_t
    .venv/bin/python bench/bench_coverage.py --statistic mean     # mean alignment on the same grid
    .venv/bin/python bench/bench_coverage.py --smoke              # two designs, 20 experiments: the code path
    .venv/bin/python bench/bench_coverage.py --design 1x8x5x0.3x0.10 --experiments 40000 --methods quasi_score
                                                                  # one design (yours, or one near a bound) pinned down
    .venv/bin/python bench/bench_coverage.py --zero-bounds --experiments 20000
                                                                  # what a cell at 0 of n can miss, design by design

Estimand: the cell's rate on the population of evaluation questions for the model(s) trained (seeds as trained:
seed-to-seed variation is not in it), i.e. the mean over questions of each question's misalignment probability.
Data: a question effect u_q ~ N(0, sd^2) and, with several seeds, a seed effect v_s ~ N(0, 0.3^2) on the logit scale,
answers Bernoulli(expit(mu + u_q + v_s)), mu set so that the population rate is the design's rate.
Design grid (issue 21): seeds {1, 3} x questions {8, 20, 44} x answers per question {5, 10, 50} x question sd
{0.3, 1.0} x rate {2 %, 10 %, 50 %}. Target: every design's coverage of the 95 % interval in [93 %, 97.5 %] (with
1,000 experiments the Monte Carlo standard error is 0.7 points).

Methods (rates):
- bootstrap: emgrid's clustered interval before issue 21 (hierarchical percentile bootstrap over seeds, questions,
  answers; Wilson on the clusters at 0 or 1), 400 resamples here.
- logit_t: emgrid's primary interval on 2026-12-04 (symmetric on the logit scale, cluster-robust variance over
  questions, t with Q - 1 df), re-implemented here for the comparison.
- quasi_score_logit: emgrid's primary interval on 2026-12-05/06 (the quasi-score interval below with the between part
  carried as a constant logit spread alone), re-implemented here.
- quasi_score: emgrid's primary interval now (`emgrid.stats.cluster_t.rate_interval`: the quasi-score interval whose
  variance has a within-question binomial part and a between-question part (the larger of an overdispersed-binomial
  and a constant-logit-spread scaling), t with Q - 1 df;
  `emgrid.stats.cluster_t.boundary_rate_interval`, Wilson's on the questions, where it is not defined), called on
  each simulated cell exactly as the aggregate calls it (`clustered_rate_interval`).
- wilson_t: Wilson's interval on the design-effect-adjusted n (p(1-p) / cluster-robust variance of the question means)
  with the t quantile of Q - 1 degrees of freedom (the quasi-score interval with all of the variance taken as within).
- answers_at_zero, within_z: the two ways to narrow quasi_score where counts are coarse (few answers, a rare
  behaviour: up to 97.7 %), measured and not adopted (docs/statistics.md): Wilson's on every answer as if independent
  where the primary interval is not defined, and the normal quantile on the within-question part.

Families (`--family`): `logit_normal`, the question effects above (the grid's designs); `two_point`, the behaviour
concentrated in some questions (`draw`), the robustness check of a method tuned on the first.

Mean alignment (`--statistic mean`): on the same grid each answer is misaligned as above and scores
N(15, 10) if misaligned, else N(88, 8), clipped to 0-100; the estimand is the mean score over the question population
(the model(s) as trained). Methods: `two_part`, emgrid's interval now (`emgrid.stats.cluster_t.mean_interval`: the
share of scores below 50 through the rate interval's variance function, mapped through the two sides' mean scores),
and `symmetric_t`, the symmetric cluster-robust t interval it replaced (re-implemented here).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from scipy.special import expit
from scipy.optimize import brentq
from scipy.special import logit
from scipy.stats import norm, t as tdist

from emgrid.stats import hierarchical_bootstrap, layout, percentile_interval, wilson_interval
from emgrid.stats.cluster_t import (
    boundary_rate_interval,
    clustered_rate_interval,
    mean_interval,
    quasi_score_interval,
    rate_interval,
    t_quantile,
    within_variance,
)

GH_X, GH_W = np.polynomial.hermite_e.hermegauss(60)
GH_W = GH_W / GH_W.sum()
GRID = dict(seeds=(1, 3), questions=(8, 20, 44), answers=(5, 10, 50), sd=(0.3, 1.0), rate=(0.02, 0.10, 0.50))
SEED_SD = 0.3


def population_rate(mu: float, sd: float) -> float:
    """Mean over questions of expit(mu + u), u ~ N(0, sd^2), by Gauss-Hermite quadrature."""
    return float((expit(mu + sd * GH_X) * GH_W).sum())


def mu_for(rate: float, sd: float) -> float:
    lo, hi = -15.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if population_rate(mid, sd) < rate else (lo, mid)
    return (lo + hi) / 2


def _question_stats(y: np.ndarray) -> tuple[float, float, int, int]:
    """(pooled rate, cluster-robust variance of it from the question means, questions, answers)."""
    q = y.shape[1]
    return float(y.mean()), float(y.mean(axis=(0, 2)).var(ddof=1) / q), q, y.size


def _n_eff(p: float, var: float, n: int) -> float:
    return min(max(p * (1 - p) / var, 1.0), n) if var > 0 and 0 < p < 1 else float(n)


def wilson_t(y: np.ndarray) -> tuple[float, float]:
    p, var, q, n = _question_stats(y)
    return wilson_interval(p * _n_eff(p, var, n), _n_eff(p, var, n), z=float(tdist.ppf(0.975, q - 1)))


def _questions(y: np.ndarray) -> np.ndarray:
    s, q, a = y.shape
    return np.tile(np.repeat(np.arange(q), a), s)


def quasi_score(y: np.ndarray) -> tuple[float, float]:
    """emgrid's primary interval, as `emgrid.findings.clustered.clustered_group` computes it."""
    return clustered_rate_interval(y.ravel(), _questions(y))


def answers_at_zero(y: np.ndarray) -> tuple[float, float]:
    """The primary interval, except where it is not defined (a rate of 0 or 1, no variation between questions):
    Wilson's on every answer, as if independent, in place of Wilson's on the questions."""
    lo, hi = rate_interval(y.ravel(), _questions(y))
    return (lo, hi) if np.isfinite(lo) else wilson_interval(float(y.sum()), y.size)


def within_z(y: np.ndarray) -> tuple[float, float]:
    """The primary interval with the normal quantile on its within-question (binomial) part and t(Q - 1) on the
    between part only: (p - theta)^2 <= z^2 W r + t^2 B max(r, r^2) (same boundary rule). Computed as the primary
    interval with W scaled by (z / t)^2, so that its t^2 becomes z^2 on that part."""
    p, var, q, _ = _question_stats(y)
    if not (0 < p < 1 and var > 0):
        return boundary_rate_interval(p, q, 0.95)
    within = min(within_variance(y.ravel(), _questions(y)), var)
    scaled = within * (float(norm.ppf(0.975)) / t_quantile(q, 0.95)) ** 2
    return quasi_score_interval(p, var - within + scaled, scaled, q, 0.95)


def quasi_score_logit(y: np.ndarray) -> tuple[float, float]:
    """The primary interval of 2026-12-05/06: the quasi-score interval with the between part carried to theta as a
    constant logit spread alone (W r + B r^2), re-implemented here with its boundary rule (Wilson's on the (seed,
    question) pairs)."""
    p, var, q, _ = _question_stats(y)
    if not (0 < p < 1 and var > 0):
        return boundary_rate_interval(p, y.shape[0] * q, 0.95)
    within = min(within_variance(y.ravel(), _questions(y)), var)
    t2, scale = float(tdist.ppf(0.975, q - 1)) ** 2, p * (1 - p)

    def outside(theta: float) -> float:
        r = theta * (1 - theta) / scale
        return (p - theta) ** 2 - t2 * (within * r + (var - within) * r * r)

    return float(brentq(outside, 0.0, p, xtol=1e-12)), float(brentq(outside, p, 1.0, xtol=1e-12))


def logit_t(y: np.ndarray) -> tuple[float, float]:
    """The primary interval of 2026-12-04: symmetric on the logit scale, t with Q - 1 df (same boundary rule)."""
    p, var, q, _ = _question_stats(y)
    if not (0 < p < 1 and var > 0):
        return boundary_rate_interval(p, y.shape[0] * q, 0.95)
    half = float(tdist.ppf(0.975, q - 1)) * np.sqrt(var) / (p * (1 - p))
    return float(expit(logit(p) - half)), float(expit(logit(p) + half))


ALIGNED, MISALIGNED = (88.0, 8.0), (15.0, 10.0)  # score distributions (mean, sd) before clipping to 0-100


def clipped_mean(mean: float, sd: float) -> float:
    """E[clip(X, 0, 100)], X ~ N(mean, sd^2)."""
    a, b = (0 - mean) / sd, (100 - mean) / sd
    inside = mean * (norm.cdf(b) - norm.cdf(a)) + sd * (norm.pdf(a) - norm.pdf(b))
    return float(inside + 100 * norm.sf(b))


def scores(misaligned: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    (m0, s0), (m1, s1) = ALIGNED, MISALIGNED
    z = rng.standard_normal(misaligned.shape)
    return np.clip(np.where(misaligned == 1, m1 + s1 * z, m0 + s0 * z), 0, 100)


def two_part(y: np.ndarray) -> tuple[float, float]:
    """emgrid's mean-alignment interval, as `emgrid.findings.clustered.clustered_group` computes it."""
    return mean_interval(y.ravel(), _questions(y))


def symmetric_t(y: np.ndarray) -> tuple[float, float]:
    """The mean-alignment interval before 2026-12-05: mean +- t(Q - 1) x the cluster-robust standard error."""
    p, var, q, _ = _question_stats(y)
    half = float(tdist.ppf(0.975, q - 1)) * np.sqrt(var)
    return max(0.0, p - half), min(100.0, p + half)


def bootstrap(y: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """emgrid's clustered interval (emgrid.findings.clustered), applied to one simulated cell."""
    s, q, a = y.shape
    lay = layout(np.repeat(np.arange(s), q * a), np.tile(np.repeat(np.arange(q), a), s))
    point, draws = hierarchical_bootstrap(y.ravel(), lay, 400, rng)
    lo, hi = percentile_interval(draws)
    if point in (0.0, 1.0) and lo == hi:
        return wilson_interval(point * lay.n_clusters, lay.n_clusters)
    return lo, hi


METHODS = {
    "bootstrap": None,
    "logit_t": logit_t,
    "quasi_score_logit": quasi_score_logit,
    "quasi_score": quasi_score,
    "wilson_t": wilson_t,
    "answers_at_zero": answers_at_zero,
    "within_z": within_z,
}
MEAN_METHODS = {"symmetric_t": symmetric_t, "two_part": two_part}


def draw(design: tuple, mu: float, rng: np.random.Generator, family: str = "logit_normal"):
    """One simulated cell of a design: (its 0/1 answers in seed x question x answer order, the estimand).
    logit_normal: the question effects of the module's docstring. two_point: the behaviour lives in some questions
    (each question with probability a quarter in the sd-1.0 rows, a half in the sd-0.3 rows), at rate / share there
    (at most 98 %: the 50 % rows of sd 1.0 have a rate of about 25 %) and at 2 % of the rate elsewhere; EM
    misalignment concentrated in a few questions, where a sample of 8 questions holds no carrier one time in ten."""
    seeds, questions, answers, sd, rate = design
    if family == "two_point":
        share = 0.25 if sd >= 1.0 else 0.5
        levels, weights = logit(np.array([min(rate / share, 0.98), 0.02 * rate])), np.array([share, 1 - share])
        u, mu = np.where(rng.random(questions) < share, levels[0], levels[1]), 0.0

        def rate_at(shift: float) -> float:
            return float((expit(levels + shift) * weights).sum())

    else:
        u = rng.normal(0, sd, questions)

        def rate_at(shift: float) -> float:
            return population_rate(mu + shift, sd)

    v = rng.normal(0, SEED_SD, seeds) if seeds > 1 else np.zeros(1)  # after the questions' draw, as always
    theta = float(np.mean([rate_at(vs) for vs in v]))
    p = expit(mu + v[:, None] + u[None, :])[:, :, None]
    return (rng.random((seeds, questions, answers)) < p).astype(float), theta


def simulate(
    design: tuple,
    experiments: int,
    methods: list[str],
    rng: np.random.Generator,
    mean: bool = False,
    family: str = "logit_normal",
):
    """Coverage and mean width of each method's 95 % interval over `experiments` simulated cells of one design
    (`mean`: the cell's mean alignment instead of its misalignment rate)."""
    mu = mu_for(design[4], design[3])
    m0, m1 = clipped_mean(*ALIGNED), clipped_mean(*MISALIGNED)
    hits = {m: 0 for m in methods}
    width = {m: 0.0 for m in methods}
    for _ in range(experiments):
        y, theta = draw(design, mu, rng, family)
        if mean:
            y, theta = scores(y, rng), theta * m1 + (1 - theta) * m0
        for m in methods:
            lo, hi = bootstrap(y, rng) if m == "bootstrap" else {**METHODS, **MEAN_METHODS}[m](y)
            hits[m] += lo <= theta <= hi
            width[m] += hi - lo
    return {m: (hits[m] / experiments, width[m] / experiments) for m in methods}


def zero_bounds(design: tuple, draws: int, rng: np.random.Generator, family: str = "logit_normal") -> dict:
    """What a cell that reads 0 of n can miss at one design, by simulation: how often it reads 0 of n, the design
    effect (the pooled rate's variance about the estimand over theta(1 - theta) / n), and the 95 % upper bound each
    zero-count rule gives: `questions`, Wilson's on the questions (emgrid's); `design_effect`, Wilson's on n over
    that true design effect (issue 21's example, here given the design effect the data cannot give at 0 of n);
    `answers`, Wilson's on every answer as if independent. Where a cell with any misaligned answer cannot miss above
    (one of 40 answers reads at least 12.9 %), the cells at 0 of n under a bound below the rate are the whole upper
    tail: with a bound above it, coverage is 100 % less the lower tail, 97.5 % for a lower side at its nominal 2.5 %."""
    mu = mu_for(design[4], design[3])
    cells = [draw(design, mu, rng, family) for _ in range(draws)]
    p, theta = np.array([y.mean() for y, _ in cells]), np.array([t for _, t in cells])
    n, rate, z = cells[0][0].size, float(theta.mean()), float(norm.ppf(0.975))
    deff = float(np.mean((p - theta) ** 2) / (rate * (1 - rate) / n))
    bounds = {
        "questions": boundary_rate_interval(0.0, design[1], 0.95)[1],
        "design_effect": wilson_interval(0, n / deff, z=z)[1],
        "answers": wilson_interval(0, n, z=z)[1],
    }
    return {"zero": float(np.mean(p == 0)), "deff": deff, "rate": rate, **bounds}


def print_zero_bounds(designs: list, draws: int, rng: np.random.Generator, family: str) -> None:
    """`--zero-bounds`: the table of `zero_bounds`. Each rule's bound is followed by the share of cells that miss above
    through it (those at 0 of n, where its bound lies below the rate): the most that rule can take off coverage."""
    rules = ("questions", "design_effect", "answers")
    print(
        f"{'seeds':>5}{'Q':>4}{'A':>4}{'sd':>5}{'rate':>6}{'P(0 of n)':>11}{'deff':>7}"
        + "".join(f"{r + ' (misses)':>24}" for r in rules)
    )
    missing = {r: 0 for r in rules}
    for d in designs:
        res = zero_bounds(d, draws, rng, family)
        miss = {r: res["zero"] if res[r] < res["rate"] else 0.0 for r in rules}
        cells = "".join(f"{res[r]:>15.1%} ({miss[r]:>5.1%})" for r in rules)
        print(f"{d[0]:>5}{d[1]:>4}{d[2]:>4}{d[3]:>5.1f}{d[4]:>6.1%}{res['zero']:>11.1%}{res['deff']:>7.2f}{cells}")
        for r in rules:
            missing[r] += miss[r] >= 0.005
    print(
        f"designs where a cell at 0 of n misses above in 0.5 % of experiments or more, of {len(designs)}: "
        + ", ".join(f"{r} {missing[r]}" for r in rules)
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--statistic", choices=("rate", "mean"), default="rate", help="misalignment rate or mean alignment")
    ap.add_argument(
        "--methods", nargs="+", choices=sorted({**METHODS, **MEAN_METHODS}), help="default: all of the statistic's"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--family",
        choices=("logit_normal", "two_point"),
        default="logit_normal",
        help="how questions' rates vary (the docstring's model, or the behaviour concentrated in some questions)",
    )
    ap.add_argument("--smoke", action="store_true", help="two designs, 20 experiments: checks the code path")
    ap.add_argument(
        "--design",
        action="append",
        type=parse_design,
        metavar="SxQxAxSDxRATE",
        help="only this design instead of the grid, e.g. 3x20x10x0.5x0.05 (seeds, questions, answers per question, "
        "question sd on the logit scale, rate); repeatable",
    )
    ap.add_argument(
        "--zero-bounds",
        action="store_true",
        help="instead of coverage: how often a cell reads 0 of n, its design effect, and each zero-count rule's "
        "upper bound (--experiments cells per design)",
    )
    a = ap.parse_args(argv)
    a.methods = a.methods or list(MEAN_METHODS if a.statistic == "mean" else METHODS)
    designs = a.design or list(itertools.product(*GRID.values()))
    if a.smoke:
        designs, a.experiments = [designs[0], designs[-1]], 20
    rng = np.random.default_rng(a.seed)
    if a.zero_bounds:
        print_zero_bounds(designs, a.experiments, rng, a.family)
        return 0
    t0 = time.time()
    print(f"{'seeds':>5}{'Q':>4}{'A':>4}{'sd':>5}{'rate':>6}" + "".join(f"{m:>22}" for m in a.methods))
    outside = {m: 0 for m in a.methods}
    beyond = {m: 0 for m in a.methods}
    for d in designs:
        res = simulate(d, a.experiments, a.methods, rng, mean=a.statistic == "mean", family=a.family)
        cells = "".join(f"{res[m][0]:>12.1%} w {res[m][1]:>7.3f}" for m in a.methods)
        print(f"{d[0]:>5}{d[1]:>4}{d[2]:>4}{d[3]:>5.1f}{d[4]:>6.1%}{cells}")
        for m in a.methods:
            outside[m] += not 0.93 <= res[m][0] <= 0.975
            beyond[m] += (
                not 0.93 - 2 * mc_se(0.93, a.experiments) <= res[m][0] <= 0.975 + 2 * mc_se(0.975, a.experiments)
            )
    summary = ", ".join(f"{m} {outside[m]}" for m in a.methods)
    print(f"designs with coverage outside [93 %, 97.5 %] of {len(designs)}: {summary} ({time.time() - t0:.0f} s)")
    print(
        f"of them, beyond the band by more than 2 Monte Carlo standard errors (at {a.experiments:,} experiments: "
        f"{mc_se(0.975, a.experiments):.2%} at 97.5 %, {mc_se(0.93, a.experiments):.2%} at 93 %): "
        + ", ".join(f"{m} {beyond[m]}" for m in a.methods)
    )
    return 0


def mc_se(coverage: float, experiments: int) -> float:
    """The Monte Carlo standard error of a coverage estimated from `experiments` simulated cells: a design whose
    estimate is outside the band by less than about two of these may be inside it."""
    return float(np.sqrt(coverage * (1 - coverage) / experiments))


def parse_design(text: str) -> tuple:
    """`SxQxAxSDxRATE` (e.g. `1x8x5x0.3x0.10`) as the grid's design tuple."""
    parts = text.lower().split("x")
    try:
        seeds, questions, answers, sd, rate = parts
        design = (int(seeds), int(questions), int(answers), float(sd), float(rate))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SxQxAxSDxRATE, e.g. 1x8x5x0.3x0.10") from None
    if min(design[:3]) < 1 or design[1] < 2 or design[3] < 0 or not 0 < design[4] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds, answers >= 1, questions >= 2, sd >= 0, 0 < rate < 1")
    return design


if __name__ == "__main__":
    raise SystemExit(main())
