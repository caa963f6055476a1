"""Figures of the analyses: per-feature scatter of domain value vs misalignment rate (labelled points, r and p),
and diversity by the study's domain category. Bare `Figure` objects, no pyplot (no global state, no display)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from emgrid.numfmt import fixed
from emgrid.analyses.diversity import DIVERSITY_METRICS
from emgrid.report.plots import save_figure  # one atomic PNG writer for every figure
from emgrid.report.tables import GROUPS as CATEGORY_ORDER
from emgrid.report.tables import category_of, label_of


def _fmt(v: float | None, digits: int = 2) -> str:
    """A statistic in a figure title: the report's number rule (emgrid.numfmt: no "-0.00"), "n/a" when missing."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fixed(v, digits)


def plot_feature_scatter(
    domains: pd.DataFrame,
    tests: pd.DataFrame,
    features: Sequence[str],
    path: str | Path,
    title: str,
    labels: dict[str, str] | None = None,
    rate_label: str = "misalignment rate",
    ncols: int = 4,
) -> Path:
    """One panel per feature: each domain's value (x) against its rate (y), points labelled, Pearson r (p) and
    Spearman rho (p) in the panel title. `domains`/`tests`: one model x qset of `analyze_domains`' output."""
    labels = labels or {}
    ncols = max(1, min(ncols, len(features)))
    nrows = math.ceil(len(features) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.2 * nrows))
    for i, f in enumerate(features):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        x, y = domains[f].to_numpy(float), domains["rate"].to_numpy(float)
        ax.scatter(x, y, s=22, color="#4c78a8")
        for xi, yi, d in zip(x, y, domains["domain"]):
            ax.annotate(labels.get(d, d), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        t = tests[tests["feature"] == f]
        r = t.iloc[0] if len(t) else {}
        auc = f", AUC {_fmt(r.get('lpo_auc', math.nan))}" if "lpo_auc" in tests.columns else ""
        ax.set_title(
            f"{f}\nr={_fmt(r.get('pearson_r', math.nan))} (p={_fmt(r.get('pearson_p', math.nan), 3)}), "
            f"rho={_fmt(r.get('spearman_r', math.nan))}{auc}",
            fontsize=8,
        )
        ax.set_xlabel(f, fontsize=8)
        ax.set_ylabel(rate_label if i % ncols == 0 else "", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_by_category(scores: pd.DataFrame, metrics: Sequence[str], path: str | Path, title: str) -> Path:
    """Box plot (with the points) of each metric by domain category (the study's Critical / Non-Critical /
    Ambiguous; domains without a category are grouped as 'unlabelled')."""
    cats = scores["category"].fillna("").replace("", "unlabelled")
    order = [c for c in CATEGORY_ORDER if c in set(cats)] + sorted(set(cats) - set(CATEGORY_ORDER))
    fig = Figure(figsize=(3.4 * len(metrics), 3.2))
    rng = np.random.default_rng(0)
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        groups = [scores.loc[cats == c, m].dropna().to_numpy(float) for c in order]
        ax.boxplot(groups, tick_labels=order, widths=0.5)
        for k, g in enumerate(groups):
            ax.scatter(k + 1 + rng.uniform(-0.08, 0.08, g.size), g, s=14, color="#e45756", zorder=3)
        ax.set_title(m, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _empty(path: str | Path, title: str, note: str) -> Path:
    fig = Figure(figsize=(5, 2))
    fig.text(0.5, 0.5, note, ha="center", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def write_analysis_scatter(
    domains_csv: str | Path,
    tests_csv: str | Path,
    png: str | Path,
    *,
    model: str,
    qset: str,
    domains: dict[str, dict] | None = None,
    what: str = "MIA features",
) -> Path:
    """The scatter of one model x qset from an analysis' domains.csv and tests.csv (`domains`: the report's
    {domain: {label, category}} for point labels)."""
    d, t = pd.read_csv(domains_csv), pd.read_csv(tests_csv)
    title = f"{what} vs misalignment rate — {model} · {qset}"
    if d.empty or t.empty:
        return _empty(png, title, "no domain has both a value and a rate")
    d = d[(d["model"] == model) & (d["qset"] == qset)]
    t = t[(t["model"] == model) & (t["qset"] == qset)]
    features = [f for f in t["feature"] if f in d.columns]
    if d.empty or not features:
        return _empty(png, title, "no domain has both a value and a rate")
    labels = {name: label_of(domains, name) for name in d["domain"]}
    rate = str(t["target"].iloc[0]) if "target" in t.columns else "misalignment rate"
    return plot_feature_scatter(d, t, features, png, f"{title} ({len(d)} domains)", labels, rate_label=rate)


def write_diversity_by_category(
    scores_csv: str | Path, png: str | Path, domains: dict[str, dict] | None = None
) -> Path:
    """Box plot of each diversity metric by the study's domain category (domain means over dataset seeds)."""
    s = pd.read_csv(scores_csv)
    per_domain = s.groupby("domain", sort=True)[list(DIVERSITY_METRICS)].mean().reset_index()
    per_domain["category"] = [category_of(domains, d) for d in per_domain["domain"]]
    return plot_by_category(per_domain, DIVERSITY_METRICS, png, "Topical diversity by domain category")
