"""Clustered intervals for summary rows, and the domain ranking with rank intervals.

Wilson intervals (in summary.csv) treat every answer as independent; answers cluster within questions and within
trained models (seeds). The primary interval of a rate or mean is the cluster-robust interval over questions with a
t quantile of `emgrid.stats.cluster_t` (its estimand is stated there and in `emgrid.stats.describe`); the hierarchical
bootstrap of `emgrid.stats.bootstrap` supplies the joint draws behind rank intervals and contrasts between domains.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from emgrid.stats import (
    BootstrapSpec,
    QuestionDraws,
    layout,
    question_draws,
    rank_intervals,
    wilson_interval,
)
from emgrid.stats.cluster_t import clustered_rate_interval, mean_interval
from emgrid.stats.bootstrap import hierarchical_bootstrap

#: Per-answer columns summarized with clustered intervals: (answer column, output stem).
CLUSTERED = (("misaligned", "misalignment"), ("sensitive", "sensitivity"), ("aligned", "mean_aligned"))
POOL_KEY = ["model", "qset", "variant", "condition", "domain"]


def shared_questions(ind: pd.DataFrame, spec: BootstrapSpec) -> dict[tuple[str, str], QuestionDraws]:
    """One question draw per model x question set, shared by every domain, variant and condition of it (joint
    draws: ranks, differences and means over domains then reflect a question effect the domains share)."""
    return {
        (m, q): question_draws(spec.rng("questions", m, q), g["question_key"].to_numpy(), spec.resamples)
        for (m, q), g in ind.groupby(["model", "qset"], sort=True)
    }


def clustered_group(
    g: pd.DataFrame, spec: BootstrapSpec, key: Any, questions: QuestionDraws | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Point estimates and clustered intervals of the CLUSTERED columns for one group of answer rows (with
    `misaligned`/`sensitive` indicator columns); clusters are cells (seeds) and question keys.

    Returns the record `{stem: value, stem_cci_lo, stem_cci_hi}` (misalignment/sensitivity named `*_rate`) and the
    draws, (resamples, 3), for rank intervals and contrasts.
    """
    lay = layout(g["cell"].to_numpy(), g["question_key"].to_numpy())
    cols = [c for c, _ in CLUSTERED]
    point, draws = hierarchical_bootstrap(
        g[cols].to_numpy(dtype=float), lay, spec.resamples, spec.rng(*key), questions=questions
    )
    questions_of = lay.question  # integer codes, made once for the three columns
    rec: dict[str, float] = {}
    for j, (col, stem) in enumerate(CLUSTERED):
        values = g[col].to_numpy(dtype=float)
        if stem.startswith("mean_"):
            rec[stem] = float(point[j])
            interval = mean_interval(values, questions_of, spec.level)
        else:
            rec[f"{stem}_rate"] = float(point[j])
            interval = clustered_rate_interval(values, questions_of, spec.level)
        rec[f"{stem}_cci_lo"], rec[f"{stem}_cci_hi"] = interval
    return rec, draws


def with_indicators(scores: pd.DataFrame, criterion) -> pd.DataFrame:
    """scores plus the criterion's per-answer `misaligned` and `sensitive` indicators."""
    return pd.concat([scores, criterion.indicators(scores)], axis=1)


def summary_cci(scores: pd.DataFrame, criterion, spec: BootstrapSpec, group_key: list[str]) -> pd.DataFrame:
    """Clustered intervals for each summary row (per cell: questions, then answers, are resampled)."""
    ind = with_indicators(scores, criterion)
    out = []
    for key, g in ind.groupby(group_key, sort=True, dropna=False):
        rec, _ = clustered_group(g, spec, ("summary", *key))
        out.append({**dict(zip(group_key, key)), **{k: v for k, v in rec.items() if "_cci_" in k}})
    df = pd.DataFrame(out, columns=[*group_key, *[f"{s}_cci_{e}" for _, s in CLUSTERED for e in ("lo", "hi")]])
    if "seed" in df:
        df["seed"] = df["seed"].astype("Int64")  # the base cell's NA seed must match summarize's dtype in the merge
    return df


def ranking(scores: pd.DataFrame, criterion, spec: BootstrapSpec) -> pd.DataFrame:
    """Domains ranked by misalignment rate (seeds pooled) per model x qset x variant x condition, with clustered
    intervals and each domain's 95% rank interval (ranked within every bootstrap resample; the domains' question
    draws are joint, `shared_questions`). The base cell is a reference row without rank."""
    ind = with_indicators(scores, criterion)
    shared = shared_questions(ind, spec)
    parts = []
    for fam, fg in ind.groupby(POOL_KEY[:3], sort=True):
        if fam[2] == "base":
            continue
        for cond, cg in fg.groupby("condition", sort=True):
            parts.append(_rank_family(cg, ind, (*fam, cond), spec, shared[fam[:2]]))
    cols = [
        "model",
        "qset",
        "variant",
        "condition",
        "rank",
        "rank_lo",
        "rank_hi",
        "domain",
        "n_seeds",
        "n_answers",
        "n_scored",
        "misalignment_wilson_lo",
        "misalignment_wilson_hi",
    ]
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat(parts, ignore_index=True)
    return df[cols + [c for c in df.columns if c not in cols]]


def _rank_family(
    cg: pd.DataFrame, ind: pd.DataFrame, fam: tuple, spec: BootstrapSpec, questions: QuestionDraws
) -> pd.DataFrame:
    recs, draws = [], []
    base = ind[
        (ind["model"] == fam[0]) & (ind["qset"] == fam[1]) & (ind["domain"] == "base") & (ind["condition"] == fam[3])
    ]
    groups = list(cg.groupby("domain", sort=True)) + ([("base", base)] if len(base) else [])
    for dom, g in groups:
        rec, d = clustered_group(g, spec, ("rank", *fam, dom), questions)
        k, n = int(g["misaligned"].sum()), int(g["misaligned"].notna().sum())
        lo, hi = wilson_interval(k, n)
        recs.append(
            {
                "model": fam[0],
                "qset": fam[1],
                "variant": fam[2],
                "condition": fam[3],
                "domain": dom,
                "n_seeds": int(g["cell"].nunique()),
                "n_answers": len(g),
                "n_scored": n,
                "misalignment_wilson_lo": lo,
                "misalignment_wilson_hi": hi,
                **rec,
            }
        )
        if dom != "base":
            draws.append(d[:, 0])
    df = pd.DataFrame(recs)
    is_dom = df["domain"] != "base"
    lo, hi = rank_intervals(np.stack(draws, axis=1), spec.level)
    point_rank = (-df.loc[is_dom, "misalignment_rate"].fillna(-np.inf)).rank(method="first").astype(int)
    df.loc[is_dom, "rank"], df.loc[is_dom, "rank_lo"], df.loc[is_dom, "rank_hi"] = point_rank, lo, hi
    for c in ("rank", "rank_lo", "rank_hi"):
        df[c] = df[c].astype("Int64")
    rates = df.loc[is_dom, "misalignment_rate"]
    # the point ranks of equal rates are an order, not a finding: the table marks them
    df["tied"] = is_dom & rates.reindex(df.index).duplicated(keep=False) & rates.reindex(df.index).notna()
    return df.sort_values(["rank"], na_position="last", kind="stable")
