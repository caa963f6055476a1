"""Does a per-domain quantity (an MIA feature mean, a diversity score) predict the domain's misalignment rate?

The unit of analysis is the **domain**: a grid of 11 domains gives 11 data points, however many examples each has.
Every example of a domain carries the same label (its domain's rate), so a cross-validation that splits examples lets
a domain sit in training and test folds at once, and a classifier can score well by recognising the domain rather
than by learning anything that transfers to an unseen one. Hence whole domains are held out: leave-pair-out
cross-validation holds out one domain above and one below the median rate, chooses everything (the feature's sign, a
model's weights, the training labels' median) on the other domains, and asks whether the pair is ordered right; the
AUC for "domain above the median rate" is the share of pairs ordered right. (Pooling leave-one-domain-out scores into
one AUC is biased low, 0.36 for the logistic model on features without signal with 11 domains.)
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from emgrid.findings.ranking import rank_domains
from emgrid.analyses.spec import TargetSpec

MIN_DOMAINS = 3  # fewer points give no correlation p-value and no two-class training fold


def correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation with two-sided p-values (NaN with fewer than 3 points or a constant)."""
    from scipy.stats import pearsonr, spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    nan = {"pearson_r": math.nan, "pearson_p": math.nan, "spearman_r": math.nan, "spearman_p": math.nan}
    if x.size < MIN_DOMAINS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, s = pearsonr(x, y), spearmanr(x, y)
    return {
        "pearson_r": float(p.statistic),
        "pearson_p": float(p.pvalue),
        "spearman_r": float(s.statistic),
        "spearman_p": float(s.pvalue),
    }


def above_median(rates: Sequence[float]) -> np.ndarray:
    """1 for domains whose rate is strictly above the median of all domains' rates, else 0."""
    r = np.asarray(rates, float)
    return (r > np.median(r)).astype(int)


def leave_pair_out(labels: np.ndarray) -> Iterator[tuple[np.ndarray, int, int]]:
    """(train, positive, negative) for every pair of one domain above and one below the median: the pair is held out
    together and never in its own training set (Airola et al. 2011, leave-pair-out cross-validation)."""
    labels = np.asarray(labels)
    all_idx = np.arange(labels.size)
    for i in np.flatnonzero(labels == 1):
        for j in np.flatnonzero(labels == 0):
            yield all_idx[(all_idx != i) & (all_idx != j)], int(i), int(j)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties count half): the same number as sklearn's roc_auc_score, without
    its per-call overhead, which the permutation test would pay thousands of times."""
    labels = np.asarray(labels)
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def choose_sign(x: np.ndarray, labels: np.ndarray, rates: np.ndarray) -> float:
    """+1 or -1: the direction in which the feature ranks the (training) domains' labels best. A one-class training
    fold has no AUC; the sign of the feature's correlation with the rate decides instead (+1 on ties)."""
    auc = _auc(labels, x)
    if not math.isnan(auc) and auc != 0.5:
        return 1.0 if auc > 0.5 else -1.0
    if x.size >= 2 and np.ptp(x) > 0 and np.ptp(rates) > 0:
        return 1.0 if np.corrcoef(x, rates)[0, 1] >= 0 else -1.0
    return 1.0


def score_sign(x_train: np.ndarray, rates_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """A single feature's scores of held-out domains: their values times the sign chosen on the training domains
    (whose labels are above the training domains' own median)."""
    return choose_sign(x_train, above_median(rates_train), rates_train) * x_test


def fit_logistic(X: np.ndarray, y: np.ndarray, C: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (sklearn's default objective: log-loss + ||w||^2 / 2C, intercept free) by
    Newton's method: a few microseconds on 9 domains, where sklearn's per-fit overhead would dominate a permutation
    test of thousands of leave-pair-out fits."""
    Z = np.column_stack([X, np.ones(len(X))])
    beta = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], 1.0 / C)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(Z @ beta)))
        grad = Z.T @ (p - y) + penalty * beta
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(penalty) + 1e-10 * np.eye(Z.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def score_logistic(X_train: np.ndarray, rates_train: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """Scores of a standardised logistic regression on several features, trained on the training domains' labels
    (above their own median); NaN where those are one class (no model can be fitted)."""
    y = above_median(rates_train)
    if y.min() == y.max():
        return np.full(len(X_test), math.nan)
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    w, b = fit_logistic((X_train - mu) / sd, y.astype(float))
    return ((X_test - mu) / sd) @ w + b


def lpo_auc(scorer: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], X: np.ndarray, rates: np.ndarray):
    """Leave-pair-out ROC AUC for "domain above the median rate": for every (above, below) pair, fit on the other
    domains only (labels from their own median: nothing of the pair leaks in) and count whether the pair is ordered
    right (ties half). Pooling leave-one-domain-out scores instead is biased low (a mean of 0.36 for the logistic model on features
    without signal, 11 domains: the held-out domain's class is under-represented in its own training fold); the mean
    over held-out pairs is not (0.50 under no signal). NaN when no pair could be scored."""
    wins = []
    for train, i, j in leave_pair_out(above_median(rates)):
        s = scorer(X[train], rates[train], X[[i, j]])
        if not np.isnan(s).any():
            wins.append(1.0 if s[0] > s[1] else 0.5 if s[0] == s[1] else 0.0)
    return float(np.mean(wins)) if wins else math.nan


def permutation_p(scorer, X: np.ndarray, rates: np.ndarray, observed: float, n: int, seed: int) -> float:
    """Share of rate permutations (domains' rates shuffled among domains) whose leave-pair-out AUC reaches the
    observed one, counting the observed arrangement: (1 + hits) / (1 + n)."""
    if n == 0 or math.isnan(observed):
        return math.nan
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n):
        auc = lpo_auc(scorer, X, rng.permutation(rates))
        hits += int(not math.isnan(auc) and auc >= observed - 1e-12)
    return (1 + hits) / (1 + n)


def describe_target(target: TargetSpec) -> str:
    """How the report names the rate: e.g. "misalignment rate (trigger, backdoor)"."""
    return f"{target.rate.replace('_', ' ')} ({target.condition.replace('_', ' ')}, {target.variant})"


def target_rates(summary: pd.DataFrame, target: TargetSpec) -> pd.DataFrame:
    """Per model x qset x domain: the target rate averaged over seeds (columns model, qset, domain, rate)."""
    ranked = rank_domains(
        summary, condition=target.condition, variant=target.variant, metric=target.rate, qset=target.qset
    )
    ranked = ranked[ranked["domain"] != "base"]
    return ranked.rename(columns={"value": "rate"})[["model", "qset", "domain", "rate"]].dropna(subset=["rate"])


def feature_tests(
    table: pd.DataFrame, features: Sequence[str], n_permutations: int = 0, seed: int = 0, lodo: bool = True
) -> pd.DataFrame:
    """Per feature: correlations of the domain values with the rate and (with `lodo`) the leave-pair-out AUC with
    its sign chosen on training folds and a permutation p-value; plus one row `logistic(all)` for a logistic regression on
    all features. `table` has one row per domain with the feature columns and `rate`."""
    rates = table["rate"].to_numpy(float)
    rows = []
    for f in features:
        x = table[f].to_numpy(float)
        row = {"feature": f, "n_domains": len(table), **correlations(x, rates)}
        if lodo:
            row["lpo_auc"] = auc = lpo_auc(score_sign, x, rates)
            row["perm_p"] = permutation_p(score_sign, x, rates, auc, n_permutations, seed)
        rows.append(row)
    if lodo and len(features) > 1:
        X = table[list(features)].to_numpy(float)
        auc = lpo_auc(score_logistic, X, rates)
        rows.append(
            {
                "feature": "logistic(all)",
                "n_domains": len(table),
                **correlations([], []),
                "lpo_auc": auc,
                "perm_p": permutation_p(score_logistic, X, rates, auc, n_permutations, seed),
            }
        )
    return pd.DataFrame(rows)


def join_rates(values: pd.DataFrame, rates: pd.DataFrame) -> pd.DataFrame:
    """Per-domain values joined to each model x qset's rates: on model and domain when the values are per model
    (MIA features), on domain alone when they are not (diversity of the data)."""
    on = ["model", "domain"] if "model" in values.columns else ["domain"]
    return rates.merge(values, on=on, how="inner").sort_values(["model", "qset", "domain"], kind="stable")


def analyze_domains(
    values: pd.DataFrame,
    rates: pd.DataFrame,
    features: Sequence[str],
    *,
    n_permutations: int = 0,
    seed: int = 0,
    lodo: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(domains, tests): the joined per-domain table (with `above_median` labels) and `feature_tests` per model x
    qset. Domains without a rate are left out."""
    domains, tests = [], []
    for (model, qset), g in join_rates(values, rates).groupby(["model", "qset"], sort=True):
        g = g.dropna(subset=list(features)).reset_index(drop=True)
        if g.empty:
            continue
        g["above_median"] = above_median(g["rate"])
        domains.append(g)
        t = feature_tests(g, features, n_permutations, seed, lodo)
        t.insert(0, "qset", qset)
        t.insert(0, "model", model)
        tests.append(t)
    empty = pd.DataFrame(columns=["model", "qset", "feature", "n_domains"])
    return (
        pd.concat(domains, ignore_index=True) if domains else pd.DataFrame(),
        pd.concat(tests, ignore_index=True) if tests else empty,
    )
