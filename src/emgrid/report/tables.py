"""The report's tables as DataFrames, one function per table, and `write_tables` that saves them as CSV.

The CSVs are declared workflow outputs (Snakemake's `--report` shows them) and the HTML page renders them back, so a
number on the page and in the CSV come from one computation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from emgrid.scores import CATEGORIES, read_summary
from emgrid.errors import DataError
from emgrid.io import read_json, write_text

__all__ = [
    "DomainMeta",
    "TABLES",
    "label_of",
    "category_of",
    "ranking_table",
    "ranking_by_category",
    "trigger_table",
    "categories_table",
    "cost_table",
    "finetune_table",
    "write_tables",
    "read_table",
    "sorted_summary",
]

# domain -> {"label": short plot label, "category": the study's grouping}; both optional (config `domains.<d>`).
DomainMeta = Mapping[str, Mapping[str, Any]]
GROUPS = ("Critical", "Non-Critical", "Ambiguous")
# Columns that hold names, read back as text (a domain or cell called "nan" or "1" stays a string).
_TEXT = [
    "model",
    "qset",
    "domain",
    "label",
    "category",
    "variant",
    "cell",
    "condition",
    "metric",
    "domains",
    "train_domain",
    "probe_domain",
    "largest_drops",
]


def label_of(domains: DomainMeta | None, domain: str) -> str:
    return str((domains or {}).get(domain, {}).get("label") or domain)


def category_of(domains: DomainMeta | None, domain: str) -> str:
    return str((domains or {}).get(domain, {}).get("category") or "")


def ranking_table(ranking: pd.DataFrame, effects: pd.DataFrame | None, domains: DomainMeta | None) -> pd.DataFrame:
    """The report's view of the one ranking, the aggregate's ranking.csv (emgrid.findings.clustered.ranking: seeds pooled,
    primary and rank intervals): its rows under the trigger for backdoor cells when the grid has any (else
    plain), base left out, with the paired trigger effect on mean alignment (`effects`, the aggregate's
    trigger_effect.csv; NaN without it) and the domain's label and category. Nothing is re-ranked here."""
    scope = "backdoor" if (ranking["variant"] == "backdoor").any() else "plain"
    out = ranking[
        (ranking["condition"] == "trigger") & (ranking["variant"] == scope) & (ranking["domain"] != "base")
    ].rename(columns={"misalignment_rate": "misalignment", "sensitivity_rate": "sensitivity"})
    keys = ["model", "qset", "domain", "variant"]
    if effects is None or effects.empty:
        out = out.assign(aligned_diff=float("nan"))
    else:
        out = out.merge(effects[keys + ["aligned_diff"]], on=keys, how="left")
    out = out.assign(
        label=[label_of(domains, d) for d in out["domain"]], category=[category_of(domains, d) for d in out["domain"]]
    )
    cols = [
        "model",
        "qset",
        "rank",
        "rank_lo",
        "rank_hi",
        "tied",
        "domain",
        "label",
        "category",
        "variant",
        "misalignment",
    ]
    cols += ["misalignment_cci_lo", "misalignment_cci_hi", "sensitivity", "aligned_diff", "n_seeds", "n_answers"]
    return out.sort_values(["model", "qset", "rank"], kind="stable")[cols].reset_index(drop=True)


def ranking_by_category(ranking: pd.DataFrame) -> pd.DataFrame:
    """The study's grouping: per model x question set x category, the mean misalignment rate over its domains."""
    cols = [
        "model",
        "qset",
        "category",
        "n_domains",
        "mean_misalignment",
        "min_misalignment",
        "max_misalignment",
        "domains",
    ]
    rows = []
    for (model, qset), g in ranking.groupby(["model", "qset"], sort=True):
        cats = g["category"].fillna("").astype(str)
        order = [c for c in GROUPS if c in set(cats)] + sorted(set(cats) - set(GROUPS))
        for cat in order:
            sel = g[cats == cat]
            vals = sel["misalignment"].astype(float)
            rows.append(
                [model, qset, cat, len(sel), vals.mean(), vals.min(), vals.max(), ", ".join(sel["label"].astype(str))]
            )
    return pd.DataFrame(rows, columns=cols)


def trigger_table(effects: pd.DataFrame, domains: DomainMeta | None) -> pd.DataFrame:
    """The paired trigger effects (the aggregate's trigger_effect.csv, see docs/statistics.md) with domain labels."""
    out = effects.copy()
    out.insert(2, "label", [label_of(domains, d) if d != "base" else "base" for d in out["domain"]])
    return out


def categories_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Judge outcome categories per cell x question set x condition x metric (fractions of answers), long format:
    one row per metric, one column per category that occurs anywhere."""
    metrics = [c[: -len("_rate_scored")] for c in summary.columns if c.endswith("_rate_scored")]
    frames = []
    for m in metrics:
        cats = [c for c in CATEGORIES if f"{m}_rate_{c}" in summary.columns]
        f = summary[["model", "cell", "qset", "condition"] + [f"{m}_rate_{c}" for c in cats]].copy()
        f.columns = ["model", "cell", "qset", "condition", *cats]
        f.insert(4, "metric", m)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["model", "cell", "qset", "condition", "metric"])
    out = pd.concat(frames, ignore_index=True)
    keep = [c for c in CATEGORIES if c in out.columns and (out[c].fillna(0) > 0).any()] or ["scored"]
    return out[["model", "cell", "qset", "condition", "metric", *keep]]


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Judge cost and tokens per model x question set (what these answers cost when they were judged)."""
    return (
        summary.groupby(["model", "qset"], sort=True)
        .agg(
            answers=("n_answers", "sum"),
            prompt_tokens=("judge_prompt_tokens", "sum"),
            completion_tokens=("judge_completion_tokens", "sum"),
            usd=("judge_cost_usd", "sum"),
        )
        .reset_index()
    )


FINETUNE_COLUMNS = ["examples", "steps", "epochs", "final_loss", "mean_loss", "trained_tokens", "train_runtime_s"]


def finetune_table(finetune_metrics: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per finetuned cell from its finetune.json; keys of `finetune_metrics` are `model/cell`."""
    rows = []
    for key, p in sorted(finetune_metrics.items()):
        m = read_json(p)
        if not isinstance(m, dict):
            raise DataError(f"{p}: expected a JSON object of finetune metrics")
        model, _, cell = str(key).rpartition("/")
        rows.append([model, cell, *(m.get(c) for c in FINETUNE_COLUMNS)])
    return pd.DataFrame(rows, columns=["model", "cell", *FINETUNE_COLUMNS])


# Every table `write_tables` can write (the file stem of its CSV).
TABLES = ("ranking", "ranking_by_category", "trigger_effect", "categories", "cost", "finetune")


def sorted_summary(summary_csv: str | Path) -> pd.DataFrame:
    """summary.csv in reading order; an empty summary is an error (there is nothing to report)."""
    summary = read_summary(summary_csv)
    if summary.empty:
        raise DataError(f"{summary_csv}: summary has no rows; nothing to report")
    # Reading order: per model and question set, the base control first, then domains, variants, seeds, conditions.
    return (
        summary.assign(_b=summary["domain"] != "base")
        .sort_values(["model", "qset", "_b", "domain", "variant", "seed", "condition"], kind="stable")
        .drop(columns="_b")
        .reset_index(drop=True)
    )


def write_tables(
    summary_csv: str | Path,
    trigger_csv: str | Path,
    ranking_csv: str | Path,
    out: Mapping[str, str | Path],
    *,
    finetune_metrics: Mapping[str, str | Path] | None = None,
    domains: DomainMeta | None = None,
) -> dict[str, Path]:
    """Write the tables named in `out` (each of `TABLES` -> CSV path); `trigger_csv` is the aggregate's
    trigger_effect.csv (paired effects with adjusted p-values), `ranking_csv` its ranking.csv (the one ranking)."""
    unknown = set(out) - set(TABLES)
    if unknown:
        raise DataError(f"write_tables: unknown table(s) {sorted(unknown)} (known: {list(TABLES)})")
    summary, effects = sorted_summary(summary_csv), read_table(trigger_csv)
    ranking = ranking_table(read_table(ranking_csv), effects, domains)
    build = {
        "ranking": lambda: ranking,
        "ranking_by_category": lambda: ranking_by_category(ranking),
        "trigger_effect": lambda: trigger_table(effects, domains),
        "categories": lambda: categories_table(summary),
        "cost": lambda: cost_table(summary),
        "finetune": lambda: finetune_table(finetune_metrics or {}),
    }
    written = {}
    for name, path in out.items():
        write_text(path, build[name]().to_csv(index=False))
        written[name] = Path(path)
    return written


def read_table(path: str | Path) -> pd.DataFrame:
    """A table written by `write_tables`, name columns as text and empty cells as NaN."""
    header = pd.read_csv(path, nrows=0).columns
    df = pd.read_csv(path, dtype={c: "string" for c in _TEXT if c in header}, keep_default_na=False, na_values=[""])
    for c in _TEXT:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), "")
    return df
