"""The minimum detectable effect (emgrid.stats.power): an effect of the printed MDE is detected by emgrid's own
sign-flip test in 75-85 % of simulated runs (power 0.8), across small and large designs and both metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import t as scipy_t

from emgrid.config import validate_config
from emgrid.power_plan import designs, format_power, power_rows
from emgrid.stats.paired import sign_flip_floor, sign_flip_pvalue
from emgrid.stats.power import (
    DEFAULT_COMPONENTS,
    VarianceComponents,
    answers_for,
    components_from_scores,
    mde,
    question_variance,
    questions_for,
)

REPO = Path(__file__).resolve().parents[1]
RUNS = 800  # Monte Carlo standard error of a power near 0.8: 1.4 points


def _detections(vc: VarianceComponents, seeds: int, questions: int, answers: int, effect: float, rng) -> float:
    """Share of simulated runs whose sign-flip p-value is below 0.05 (normal answers: the alignment metric). The
    effect varies by question, shared by its seeds (the model the MDE assumes); the test flips each question's mean
    pair difference, as `emgrid.stats.paired.paired_effect` does."""
    hits = 0
    for _ in range(RUNS):
        true = effect + rng.normal(0, math.sqrt(vc.between), questions)
        noise = rng.normal(0, math.sqrt(vc.within), (2, seeds, questions, answers)).mean(axis=3)
        d = (true + noise[1] - noise[0]).mean(axis=0)
        hits += sign_flip_pvalue(d, 1000, rng) < 0.05
    return hits / RUNS


@pytest.mark.slow
@pytest.mark.parametrize("seeds,questions,answers", [(1, 8, 5), (1, 44, 50), (3, 20, 10)])
def test_an_effect_of_the_mde_is_detected_in_about_80_percent_of_runs(seeds, questions, answers):
    vc = DEFAULT_COMPONENTS["aligned"]
    effect = mde(vc, questions, answers, seeds)
    power = _detections(vc, seeds, questions, answers, effect, np.random.default_rng(seeds * 100 + questions))
    print(f"\n{seeds} seeds x {questions} questions x {answers} answers: MDE {effect:.2f} points, power {power:.1%}")
    assert 0.75 <= power <= 0.85


@pytest.mark.slow
def test_the_misalignment_mde_holds_for_binary_answers():
    """Bernoulli answers at the default 10 % rate: the normal-theory MDE still gives about 80 % power."""
    vc = DEFAULT_COMPONENTS["misaligned"]
    seeds, questions, answers = 3, 20, 10
    effect = mde(vc, questions, answers, seeds)
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(RUNS):
        shift = effect + rng.normal(0, math.sqrt(vc.between), questions)
        p0 = np.full((seeds, questions), 0.10)
        p1 = np.clip(p0 + shift, 0, 1)
        y0 = rng.binomial(answers, p0) / answers
        y1 = rng.binomial(answers, p1) / answers
        hits += sign_flip_pvalue((y1 - y0).mean(axis=0), 1000, rng) < 0.05
    power = hits / RUNS
    print(f"\nmisalignment MDE {effect:.3f}, power {power:.1%}")
    assert 0.75 <= power <= 0.85


def test_the_mde_shrinks_with_answers_questions_and_seeds():
    vc = DEFAULT_COMPONENTS["aligned"]
    assert mde(vc, 8, 10) < mde(vc, 8, 5)
    assert mde(vc, 44, 5) < mde(vc, 8, 5)
    assert mde(vc, 8, 5, seeds=3) < mde(vc, 8, 5)
    # seeds average the answers' noise, not the effect's question-to-question spread: 3 seeds help less than 3x
    # the questions do
    assert mde(vc, 3 * 8, 5) < mde(vc, 8, 5, seeds=3)


def test_no_mde_without_two_questions_or_an_answer():
    vc = DEFAULT_COMPONENTS["aligned"]
    assert math.isnan(mde(vc, 1, 50))
    assert math.isnan(mde(vc, 1, 50, seeds=3))  # three seeds of one question are not a sample of questions
    assert math.isnan(mde(vc, 8, 0))


def test_the_answers_and_questions_named_for_a_target_reach_it_and_one_fewer_does_not():
    vc = DEFAULT_COMPONENTS["aligned"]
    target = 6.0
    a = answers_for(vc, target, questions=20)
    assert a is not None and mde(vc, 20, a) <= target < mde(vc, 20, a - 1)
    a3 = answers_for(vc, target, questions=20, seeds=3)
    assert a3 is not None and mde(vc, 20, a3, 3) <= target < mde(vc, 20, a3 - 1, 3)
    q = questions_for(vc, target, seeds=1, answers=5)
    assert q is not None and mde(vc, q, 5) <= target < mde(vc, q - 1, 5)
    q3 = questions_for(vc, target, seeds=3, answers=5)
    assert q3 is not None and mde(vc, q3, 5, 3) <= target < mde(vc, q3 - 1, 5, 3)


def test_a_target_below_the_effect_heterogeneity_needs_questions_not_answers():
    """With 8 questions the effect's own question-to-question spread (sd 5) already costs more than a 3-point
    target, whatever the answers or seeds."""
    vc = DEFAULT_COMPONENTS["aligned"]
    assert answers_for(vc, 3.0, questions=8) is None
    assert answers_for(vc, 3.0, questions=8, seeds=3) is None
    assert questions_for(vc, 3.0, seeds=1, answers=50) is not None


def test_components_measured_on_judged_answers_recover_planted_ones():
    rng = np.random.default_rng(3)
    within, between = 15.0**2, 4.0**2
    rows = []
    for cell in ("a-backdoor-s0", "b-backdoor-s0"):
        for q in range(300):
            effect = -5 + rng.normal(0, math.sqrt(between))
            base = 80 + rng.normal(0, 10)
            for cond, shift in (("no_trigger", 0.0), ("trigger", effect)):
                for v in base + shift + rng.normal(0, math.sqrt(within), 20):
                    rows.append({"cell": cell, "question_key": f"q{q}", "condition": cond, "aligned": v})
    vc = components_from_scores(pd.DataFrame(rows), "aligned", "aligned")
    assert vc is not None and "600 pairs" in vc.source
    assert vc.within == pytest.approx(within, rel=0.05)
    assert vc.between == pytest.approx(between, rel=0.35)


def test_no_components_from_answers_without_both_conditions():
    df = pd.DataFrame(
        {
            "cell": ["c"] * 4,
            "question_key": ["q1", "q1", "q2", "q2"],
            "condition": ["no_trigger"] * 4,
            "aligned": [1.0] * 4,
        }
    )
    assert components_from_scores(df, "aligned", "aligned") is None


def test_the_plan_names_the_design_that_reaches_a_target_and_says_where_its_variances_come_from():
    measured = {("m", "q", "aligned"): VarianceComponents("aligned", 15.0**2, 3.0**2, "judged results (40 pairs)")}
    design = {"model": "m", "qset": "q", "seeds": 1, "questions": 8, "answers": 5}
    rows = power_rows([design], measured, target=10.0, target_metric="aligned")
    mis, ali = rows
    assert (mis["source"], ali["source"]) == ("defaults", "judged results (40 pairs)")
    assert mis["mde"] == pytest.approx(100 * mde(DEFAULT_COMPONENTS["misaligned"], 8, 5)) and "target" not in mis
    assert ali["answers_needed"] == answers_for(measured[("m", "q", "aligned")], 10.0, 8)
    text = "\n".join(format_power(rows))
    assert "m / q (1 seed(s) x 8 questions x 5 answers): misalignment" in text
    assert f"target 10 points: {ali['answers_needed']} answers per question and condition" in text


def test_paper_exact_states_its_question_counts_before_the_files_exist():
    """The study's question files are not shipped: `planned_questions` lets the plan state the MDE anyway."""
    config = validate_config(yaml.safe_load((REPO / "config/paper-exact.yaml").read_text()))
    found = {(d["qset"], d["questions"], d["answers"]) for d in designs(config)}
    assert found == {("first_plot", 44, 5), ("all_domains", 220, 5)}


def test_the_plan_says_when_a_question_set_is_too_small_for_any_holm_significant_drop():
    """The trigger test flips questions, so Q questions cannot give a p-value below 2 / 2^Q: 0.0078 at 8, above
    Holm's first threshold across 11 domains (0.05 / 11 = 0.0045). The plan says so before anything runs, and names
    the questions that would do (9: 2 / 512 = 0.0039); a set of 44 questions gets no note."""
    rng = np.random.default_rng(0)
    assert sign_flip_pvalue(np.ones(8), 2000, rng) == sign_flip_floor(8, 2000) == 2 / 256
    assert sign_flip_floor(11, 2000) == 1 / 2001  # 2^11 patterns > 2,000: random flips, floor 1 / (1 + flips)
    small = {"model": "m", "qset": "q8", "seeds": 3, "questions": 8, "answers": 5, "domains": 11}
    large = {**small, "qset": "q44", "questions": 44}
    rows = power_rows([small, large], {}, alpha=0.05, permutations=2000)
    notes = [line for line in format_power(rows) if line.startswith("  note:")]
    assert notes == [
        "  note: m / q8: 8 questions: the trigger test's smallest p-value is 0.0078, above Holm's first threshold "
        "across 11 domain(s) (0.0045), so no domain's drop can be Holm-significant; 9 questions or more can be"
    ]
    tiny = power_rows([{**small, "questions": 4}], {}, alpha=0.05, permutations=2000)
    assert "(nor significant at alpha 0.05)" in tiny[-1]["floor_note"]
    few_flips = power_rows([large], {}, alpha=0.05, permutations=100)
    assert few_flips[-1]["floor_note"].endswith("more sign flips (analysis.bootstrap.permutations) are needed")


def test_a_misalignment_mde_is_never_zero_when_the_judged_answers_held_no_misaligned_one():
    """Judged results with no misaligned answer measure a 0 % rate and no spread. The MDE is then the rate a design
    could tell from 0 (the root of MDE = m sqrt(Var(MDE) / Q) above 0), not 0.0 points, as the demo's plan read."""
    none = VarianceComponents("misaligned", within=0.0, between=0.0, source="judged", base_rate=0.0)
    effect = mde(none, 5, 2)
    m = 2.776 + 0.941  # t(0.975, 4) + t(0.8, 4)
    assert effect == pytest.approx(m**2 / (5 * 2 + m**2), rel=1e-3)  # e = m sqrt(e (1 - e) / (A S Q))
    assert 0 < effect < 1
    assert mde(none, 44, 5) < effect
    full = VarianceComponents("misaligned", within=0.0, between=0.0, source="judged", base_rate=1.0)
    assert math.isnan(mde(full, 8, 5))  # nothing left to rise
    vc = DEFAULT_COMPONENTS["misaligned"]  # a 10 % base rate: the root solves the same equation
    e = mde(vc, 20, 10, 3)
    m20 = scipy_t.ppf(0.975, 19) + scipy_t.ppf(0.8, 19)
    assert e == pytest.approx(m20 * math.sqrt(question_variance(vc, 10, 3, e) / 20), rel=1e-9)
