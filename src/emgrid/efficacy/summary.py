"""Efficacy figures: per answer an outcome, per cell x domain x condition the behaviour rate, the trigger's gating of
it, and whether the finetune "took" (its behaviour rate is above the untouched base model's on the same prompts).

Intervals are Wilson 95% (rates) and Newcombe (differences) over answers when each held-out prompt has one answer per
condition (the default, greedy): the answers are then independent draws of prompts. With several samples per prompt
the answers to one prompt cluster and those intervals would be too narrow. Rates then take emgrid's primary rate
interval with the prompts as clusters (`emgrid.stats.cluster_t.clustered_rate_interval`: the quasi-score interval,
Wilson on the number of prompts at 0 or n of n), and differences the paired cluster bootstrap (resample prompts, then
answers within each; the two rates of a difference share their draws, as both answer the same prompts), Newcombe on
the numbers of prompts where every draw is the same (0 - 0). Column `interval` says which.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from emgrid.efficacy.exact import BEHAVIOUR, CORRECT, exact_outcomes
from emgrid.efficacy.spec import METRIC, EfficacySpec
from emgrid.errors import DataError
from emgrid.grid import CONDITIONS, parse_cell
from emgrid.judge.scoring import DEFAULT_MIN_MASS, categorize
from emgrid.io import read_jsonl, write_text
from emgrid.stats import (
    BootstrapSpec,
    hierarchical_bootstrap,
    layout,
    newcombe_diff_interval,
    percentile_interval,
    wilson_interval,
)
from emgrid.stats.cluster_t import clustered_rate_interval

#: Judge-scored answers without a usable score (refusal, no integer mass ...) are `unscored`, like unparsable ones.
UNSCORED = "unscored"
SCORE_COLS = [
    "model",
    "cell",
    "domain",
    "variant",
    "seed",
    "condition",
    "question_key",
    "sample",
    "scorer",
    "outcome",
    "score",
    "answer",
]
#: The condition a cell was trained to show its behaviour in: plain cells always, backdoor cells with the trigger.
TRAINED_CONDITION = {"plain": "no_trigger", "backdoor": "trigger"}


def score_rows(rows: Sequence[dict], spec: EfficacySpec, min_mass: float = DEFAULT_MIN_MASS) -> pd.DataFrame:
    """One row per answer with its outcome (behaviour / correct / unparsable / unscored) and judge score."""
    if spec.scorer == "exact":
        outcomes = exact_outcomes(rows, spec.exact)
        scores = [math.nan] * len(rows)
    else:
        outcomes, scores = [], []
        for r in rows:
            if r.get("metric") != METRIC:
                raise DataError(
                    f"efficacy judged row for cell {r.get('cell')} has metric {r.get('metric')!r}, expected {METRIC!r}"
                )
            score, _ = categorize(r, min_mass)
            scores.append(math.nan if score is None else float(score))
            outcomes.append(UNSCORED if score is None else (BEHAVIOUR if score > spec.threshold else CORRECT))
    recs = []
    for r, outcome, score in zip(rows, outcomes, scores):
        cell = parse_cell(r["model"], r["cell"])
        recs.append(
            {
                "model": r["model"],
                "cell": r["cell"],
                "domain": r["domain"],
                "variant": cell.variant or "base",
                "seed": cell.seed,
                "condition": r["condition"],
                "question_key": r["question_key"],
                "sample": r["sample"],
                "scorer": spec.scorer,
                "outcome": outcome,
                "score": score,
                "answer": r["answer"],
            }
        )
    df = pd.DataFrame.from_records(recs, columns=SCORE_COLS)
    df["seed"] = df["seed"].astype("Int64")
    return df


WILSON, CLUSTERED = "wilson", "clustered by prompt"


def clustered(scores: pd.DataFrame) -> bool:
    """Whether some prompt has several answers in one cell x domain x condition (then answers cluster by prompt)."""
    keys = ["model", "cell", "domain", "condition", "question_key"]
    return bool(len(scores)) and int(scores.groupby(keys).size().max()) > 1


def _indicator(g: pd.DataFrame) -> np.ndarray:
    """1 = behaviour, 0 = correct, NaN = unparsable / unscored (left out, as in the rate)."""
    return np.where(g["outcome"] == BEHAVIOUR, 1.0, np.where(g["outcome"] == CORRECT, 0.0, np.nan))


def _paired_draws(parts: Sequence[pd.DataFrame], spec: BootstrapSpec, key: tuple) -> np.ndarray:
    """(resamples, len(parts)) cluster-bootstrap draws of each part's rate; parts answer the same prompts, and an
    answer row (prompt, sample) is drawn for every part at once, so differences of the columns are paired."""
    cols = [pd.Series(_indicator(g), index=pd.MultiIndex.from_arrays([g["question_key"], g["sample"]])) for g in parts]
    m = pd.concat(cols, axis=1)
    lay = layout([0] * len(m), list(m.index.get_level_values(0)))
    _, draws = hierarchical_bootstrap(m.to_numpy(dtype=float), lay, spec.resamples, spec.rng(*key))
    return draws


def rates(scores: pd.DataFrame, bootstrap: BootstrapSpec | None = None) -> pd.DataFrame:
    """Per model x cell x domain x condition: answers, scored answers, behaviour count, rate and its interval
    (Wilson; the primary rate interval over prompts when the answers cluster by prompt, see `clustered`)."""
    spec = bootstrap or BootstrapSpec()
    boot = clustered(scores)
    out = []
    for key, g in scores.groupby(["model", "cell", "domain", "condition"], sort=True):
        scored = g["outcome"].isin([BEHAVIOUR, CORRECT])
        k, n = int((g["outcome"] == BEHAVIOUR).sum()), int(scored.sum())
        lo, hi = _prompt_interval(g, spec.level) if boot else wilson_interval(k, n)
        out.append(
            {
                **dict(zip(["model", "cell", "domain", "condition"], key)),
                "variant": g["variant"].iloc[0],
                "n_answers": len(g),
                "n_scored": n,
                "n_behaviour": k,
                "rate": k / n if n else math.nan,
                "ci_lo": lo,
                "ci_hi": hi,
                "unscored_rate": 1 - n / len(g),
                "interval": CLUSTERED if boot else WILSON,
            }
        )
    return pd.DataFrame(out)


def _prompt_counts(g: pd.DataFrame) -> tuple[float, int]:
    """(rate x prompts, prompts): the rate on the number of prompts with a scored answer, the sample size when the
    answers to one prompt agree."""
    values = _indicator(g)
    ok = ~np.isnan(values)
    n = len(set(g["question_key"].to_numpy()[ok]))
    return (float(values[ok].mean()) * n if n else 0.0), n


def _prompt_interval(g: pd.DataFrame, level: float) -> tuple[float, float]:
    """A clustered rate interval with the prompts as clusters (one cell: the prompt is the sampling unit)."""
    return clustered_rate_interval(_indicator(g), g["question_key"].to_numpy(), level)


class _Differ:
    """Rate differences (a - b) with their 95% interval: Newcombe, or paired cluster-bootstrap draws over the prompts
    both rates answered when the answers cluster (`scores` given and `clustered`)."""

    def __init__(self, scores: pd.DataFrame | None, bootstrap: BootstrapSpec | None):
        self.spec = bootstrap or BootstrapSpec()
        self.groups = (
            dict(iter(scores.groupby(["model", "cell", "domain", "condition"], sort=False)))
            if scores is not None and clustered(scores)
            else None
        )

    def __call__(self, a: pd.Series, b: pd.Series, ka: tuple, kb: tuple) -> tuple[float, float, float]:
        k1, n1, k0, n0 = int(a["n_behaviour"]), int(a["n_scored"]), int(b["n_behaviour"]), int(b["n_scored"])
        d = k1 / n1 - k0 / n0 if n1 and n0 else math.nan
        if self.groups is None:
            return (d, *newcombe_diff_interval(k1, n1, k0, n0))
        ga, gb = self.groups[ka], self.groups[kb]
        draws = _paired_draws([ga, gb], self.spec, (*ka, *kb))
        lo, hi = percentile_interval(draws[:, 0] - draws[:, 1], self.spec.level)
        if lo == hi:  # every draw the same (0 - 0, 1 - 1): never a zero-width interval
            z = float(norm.ppf((1 + self.spec.level) / 2))
            lo, hi = newcombe_diff_interval(*_prompt_counts(ga), *_prompt_counts(gb), z=z)
        return (d, lo, hi)


def efficacy_table(
    rates_df: pd.DataFrame, scores: pd.DataFrame | None = None, bootstrap: BootstrapSpec | None = None
) -> pd.DataFrame:
    """One row per model x cell x domain: both conditions' rates, the gating difference (trigger - no trigger), and
    the comparison with base in the cell's trained condition; `took` is True when that difference's interval lies
    above 0, False when it does not (the finetune is indistinguishable from base), empty for base rows. `scores`
    (score_rows' answers) gives paired cluster-bootstrap intervals when answers cluster by prompt; else Newcombe."""
    idx = rates_df.set_index(["model", "cell", "domain", "condition"])
    diff = _Differ(scores, bootstrap)
    out = []
    for (model, cell, domain), g in rates_df.groupby(["model", "cell", "domain"], sort=True):
        rec = {"model": model, "cell": cell, "domain": domain, "variant": g["variant"].iloc[0]}
        by = {c: g[g["condition"] == c].iloc[0] if (g["condition"] == c).any() else None for c in CONDITIONS}
        for c, r in by.items():
            for col in ("n_scored", "n_behaviour", "rate", "ci_lo", "ci_hi", "unscored_rate"):
                rec[f"{col}_{c}"] = r[col] if r is not None else math.nan
        t, nt = by["trigger"], by["no_trigger"]
        both = t is not None and nt is not None
        rec["gating"], rec["gating_ci_lo"], rec["gating_ci_hi"] = (
            diff(t, nt, (model, cell, domain, "trigger"), (model, cell, domain, "no_trigger"))
            if both
            else (math.nan,) * 3
        )
        rec["interval"] = g["interval"].iloc[0] if "interval" in g else WILSON
        rec.update(_vs_base(idx, diff, model, cell, domain, rec["variant"]))
        out.append(rec)
    return pd.DataFrame(out)


def _vs_base(idx: pd.DataFrame, diff: _Differ, model: str, cell: str, domain: str, variant: str) -> dict:
    cond = TRAINED_CONDITION.get(variant)
    blank = {
        "trained_condition": cond,
        "base_rate": math.nan,
        "vs_base": math.nan,
        "vs_base_ci_lo": math.nan,
        "vs_base_ci_hi": math.nan,
        "took": None,
    }
    if cond is None or (model, cell, domain, cond) not in idx.index or (model, "base", domain, cond) not in idx.index:
        return blank
    kc, kb = (model, cell, domain, cond), (model, "base", domain, cond)
    d, lo, hi = diff(idx.loc[kc], idx.loc[kb], kc, kb)
    b = idx.loc[kb]
    return {
        **blank,
        "base_rate": b["rate"],
        "vs_base": d,
        "vs_base_ci_lo": lo,
        "vs_base_ci_hi": hi,
        "took": bool(lo > 0) if not math.isnan(lo) else False,
    }


def not_taken(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, cell) pairs whose finetune did not take (indistinguishable from base)."""
    sel = table[table["took"].astype(object).eq(False)]
    return sorted({(m, c) for m, c in zip(sel["model"], sel["cell"])})


def read_table(path: str | Path) -> pd.DataFrame:
    """efficacy.csv back, with `took` as True / False / None (base rows)."""
    df = pd.read_csv(path, dtype={"took": "object", "cell": "str", "model": "str", "domain": "str"})
    df["took"] = [None if pd.isna(v) else str(v) == "True" for v in df["took"]]
    return df


def summarize_files(
    inputs: Iterable[tuple[str | Path, dict]],
    scores_csv: str | Path,
    table_csv: str | Path,
    min_mass: float = DEFAULT_MIN_MASS,
    bootstrap: BootstrapSpec | None = None,
) -> pd.DataFrame:
    """Score every efficacy file (answers for exact domains, judged rows for judge domains) with its domain's spec
    (`inputs` = (path, EfficacySpec fields) pairs), write per-answer scores and the per-cell table; return the table."""
    parts = [score_rows(read_jsonl(p), EfficacySpec(**{"judge_prompt": None, **spec}), min_mass) for p, spec in inputs]
    if not parts:
        raise DataError("efficacy: no domain is evaluated (every domain has efficacy.scorer: none)")
    scores = pd.concat(parts, ignore_index=True)
    table = efficacy_table(rates(scores, bootstrap), scores, bootstrap)
    write_text(scores_csv, scores.to_csv(index=False, lineterminator="\n"))
    write_text(table_csv, table.to_csv(index=False, lineterminator="\n"))
    return table
