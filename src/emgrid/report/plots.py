"""The report's figures, one function per figure, each writing one PNG.

Figures are drawn on bare `matplotlib.figure.Figure` objects (Agg via savefig, no pyplot), so making a report never
touches global plotting state or needs a display. Domains are shown by their config `label` (the study's short plot
labels) and the ranking is coloured by their config `category` (the study's Critical / Non-Critical / Ambiguous).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from emgrid.grid import CONDITIONS, parse_cell
from emgrid.scores import CATEGORIES, pool_seeds, read_summary
from emgrid.errors import DataError
from emgrid.io import read_json
from emgrid.report.tables import DomainMeta, category_of, label_of, ranking_table, read_table

__all__ = [
    "PLOT_KINDS",
    "plot_misalignment",
    "plot_alignment_trigger",
    "plot_categories",
    "plot_ranking",
    "plot_loss_curves",
    "plot_transfer",
    "write_plots",
    "write_loss_curves",
    "write_transfer_plot",
]

#: The figures drawn per model x question set, in page order (captions: emgrid.report.captions.PLOT_CAPTIONS).
PLOT_KINDS = ("ranking", "misalignment", "sensitivity", "alignment_trigger", "categories")
COND_COLORS = {"no_trigger": "#4c78a8", "trigger": "#e45756"}
COND_LABELS = {"no_trigger": "no trigger", "trigger": "trigger"}
CAT_COLORS = {
    "scored": "#59a14f",
    "refusal": "#4e79a7",
    "code": "#b07aa1",
    "irrelevant": "#edc948",
    "no_score": "#f28e2b",
    "error": "#e15759",
    "missing": "#bab0ac",
}
GROUP_COLORS = {"Critical": "#d62728", "Non-Critical": "#1f77b4", "Ambiguous": "#ff7f0e", "": "#7f7f7f"}
VARIANT_ORDER = ("plain", "backdoor")


def _domain_order(domains: Sequence[str]) -> list[str]:
    ds = sorted(set(domains) - {"base"})
    return (["base"] if "base" in set(domains) else []) + ds


def _variant_panels(df: pd.DataFrame) -> list[str]:
    """Variants that get a panel; the base control is drawn inside each, not as a panel of its own."""
    vs = [v for v in df["variant"].unique() if v != "base"]
    ordered = [v for v in VARIANT_ORDER if v in vs] + sorted(v for v in vs if v not in VARIANT_ORDER)
    return ordered or ["base"]


def _panel_rows(df: pd.DataFrame, variant: str) -> pd.DataFrame:
    return df[(df["variant"] == variant) | (df["variant"] == "base")]


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG atomically (temp file, then rename): the one PNG writer of every report figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _panels(n_domains: int, n_panels: int, per_domain: float = 0.75) -> tuple[Figure, Any]:
    fig = Figure(figsize=(max(6.0, per_domain * n_domains + 2.5), 3.1 * n_panels), layout="constrained")
    return fig, fig.subplots(n_panels, 1, squeeze=False)[:, 0]


def _finish_panel(ax: Any, variant: str, ylabel: str, ylim: float) -> None:
    ax.set_ylim(0, ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(f"variant: {variant}", fontsize=10, loc="left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def plot_misalignment(
    pooled: pd.DataFrame, path: str | Path, title: str, rate: str = "misalignment", domains: DomainMeta | None = None
) -> Path:
    """Bars of the (seed-pooled) rate per domain, no-trigger vs trigger side by side, Wilson 95% error bars;
    one panel per variant, the base control as the first group of each panel."""
    variants, order = _variant_panels(pooled), _domain_order(pooled["domain"])
    fig, axes = _panels(len(order), len(variants))
    width = 0.38
    for ax, variant in zip(axes, variants):
        sub = _panel_rows(pooled, variant)
        ds = [d for d in order if d in set(sub["domain"])]
        x = np.arange(len(ds))
        for j, cond in enumerate(CONDITIONS):
            r = sub[sub["condition"] == cond].set_index("domain").reindex(ds)
            val = 100 * r[f"{rate}_rate"].to_numpy(dtype=float)
            lo = 100 * r[f"{rate}_ci_lo"].to_numpy(dtype=float)
            hi = 100 * r[f"{rate}_ci_hi"].to_numpy(dtype=float)
            err = np.clip(np.nan_to_num(np.vstack([val - lo, hi - val])), 0, None)
            ax.bar(
                x + (j - 0.5) * width,
                np.nan_to_num(val),
                width,
                yerr=err,
                capsize=2.5,
                color=COND_COLORS[cond],
                label=COND_LABELS[cond],
                error_kw={"elinewidth": 0.9},
            )
        ax.set_xticks(x, [label_of(domains, d) for d in ds], rotation=35, ha="right")
        _finish_panel(ax, variant, f"{rate} rate (%)", 105)
    axes[0].legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_alignment_trigger(
    pooled: pd.DataFrame, path: str | Path, title: str, domains: DomainMeta | None = None
) -> Path:
    """Mean alignment per domain without (circle) and with (triangle) the trigger, joined by a line: red when the
    trigger lowers alignment, grey otherwise."""
    variants, order = _variant_panels(pooled), _domain_order(pooled["domain"])
    fig, axes = _panels(len(order), len(variants), per_domain=0.7)
    for ax, variant in zip(axes, variants):
        sub = _panel_rows(pooled, variant)
        ds = [d for d in order if d in set(sub["domain"])]
        x = np.arange(len(ds))
        nt = sub[sub["condition"] == "no_trigger"].set_index("domain").reindex(ds)["mean_aligned"].to_numpy(float)
        t = sub[sub["condition"] == "trigger"].set_index("domain").reindex(ds)["mean_aligned"].to_numpy(float)
        for xi, a, b in zip(x, nt, t):
            if not (math.isnan(a) or math.isnan(b)):
                ax.plot([xi, xi], [a, b], color="#e45756" if b < a else "#999999", lw=2, zorder=1)
        ax.scatter(x, nt, marker="o", s=40, color=COND_COLORS["no_trigger"], label="no trigger", zorder=2)
        ax.scatter(x, t, marker="^", s=48, color=COND_COLORS["trigger"], label="trigger", zorder=3)
        ax.set_xticks(x, [label_of(domains, d) for d in ds], rotation=35, ha="right")
        _finish_panel(ax, variant, "mean aligned score", 100)
    axes[0].legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _pooled_categories(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Category fractions per domain x variant x condition, seeds pooled by answer count."""
    cols = [f"{metric}_rate_{c}" for c in CATEGORIES if f"{metric}_rate_{c}" in summary.columns]
    tmp = summary[["domain", "variant", "condition", "n_answers", *cols]].copy()
    for c in cols:
        tmp[c] = tmp[c] * tmp["n_answers"]
    g = tmp.groupby(["domain", "variant", "condition"], sort=False).sum(numeric_only=True)
    for c in cols:
        g[c] = g[c] / g["n_answers"].where(g["n_answers"] > 0)
    return g.reset_index()


def _category_label_order(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    keys = []
    variants = _variant_panels(df)
    for d in _domain_order(df["domain"]):
        for v in ["base"] if d == "base" else variants:
            for c in CONDITIONS:
                if ((df["domain"] == d) & (df["variant"] == v) & (df["condition"] == c)).any():
                    keys.append((d, v, c))
    return keys


def _stack_categories(ax: Any, frame: pd.DataFrame, metric: str, keys: list[tuple[str, str, str]]) -> None:
    f = frame.set_index(["domain", "variant", "condition"]).reindex(keys)
    left = np.zeros(len(keys))
    for cat in CATEGORIES:
        col = f"{metric}_rate_{cat}"
        if col not in f.columns:
            continue
        vals = 100 * np.nan_to_num(f[col].to_numpy(dtype=float))
        if vals.any():
            ax.barh(np.arange(len(keys)), vals, left=left, color=CAT_COLORS[cat], label=cat, height=0.75)
            left += vals
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of answers")
    ax.set_title(metric, fontsize=10)


def plot_categories(
    summary: pd.DataFrame,
    path: str | Path,
    title: str,
    metrics: Sequence[str] = ("aligned", "coherent"),
    domains: DomainMeta | None = None,
) -> Path:
    """Stacked horizontal bars of judge outcome categories (scored, refusal, code, ...) per domain x variant x
    condition, one panel per metric. Shows how much of each rate's denominator the judge could actually score."""
    metrics = [m for m in metrics if f"{m}_rate_scored" in summary.columns]
    if not metrics:
        raise DataError("plot_categories: summary has no category-rate columns")
    frames = {m: _pooled_categories(summary, m) for m in metrics}
    keys = _category_label_order(frames[metrics[0]])
    labels = [
        f"{label_of(domains, d)}/{v} · {COND_LABELS[c]}" if d != "base" else f"base · {COND_LABELS[c]}"
        for d, v, c in keys
    ]
    fig = Figure(figsize=(4.2 * len(metrics) + 2.5, max(2.5, 0.24 * len(keys) + 1.4)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    for ax, m in zip(axes, metrics):
        _stack_categories(ax, frames[m], m, keys)
    axes[0].set_ylim(len(keys) - 0.5, -0.5)  # shared y: first row on top, no empty margins
    axes[0].set_yticks(np.arange(len(keys)), labels, fontsize=7)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lbl in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lbl, h)
    names = [c for c in CATEGORIES if c in handles]
    fig.legend(
        [handles[n] for n in names], names, loc="outside lower center", ncols=len(names), fontsize=8, frameon=False
    )
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_ranking(ranking: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Horizontal bars of the ranked domains (`ranking_table`: most misaligned on top), coloured by the domain's
    category, with the primary interval (ranking.csv's misalignment_cci_lo/hi; its level is in the caption) as an
    error bar; dashed lines mark each category's mean."""
    r = ranking.reset_index(drop=True)
    fig = Figure(figsize=(7.0, max(2.2, 0.32 * len(r) + 1.3)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(r))
    val = 100 * r["misalignment"].to_numpy(dtype=float)
    lo = 100 * r["misalignment_cci_lo"].to_numpy(dtype=float)
    hi = 100 * r["misalignment_cci_hi"].to_numpy(dtype=float)
    groups = r["category"].fillna("").astype(str)
    colors = [GROUP_COLORS.get(g, GROUP_COLORS[""]) for g in groups]
    err = np.clip(np.nan_to_num(np.vstack([val - lo, hi - val])), 0, None)
    ax.barh(y, np.nan_to_num(val), xerr=err, color=colors, height=0.7, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_yticks(y, [f"{lbl} ({v})" if v != "backdoor" else str(lbl) for lbl, v in zip(r["label"], r["variant"])])
    if len(r):
        ax.set_ylim(len(r) - 0.5, -0.5)
    else:
        ax.set_ylim(-0.5, 0.5)
        ax.text(50, 0, "no domain was evaluated under the trigger", ha="center", va="center", color="#777")
    for g in sorted(set(groups)):
        mean = np.nanmean(np.where(groups == g, val, np.nan)) if (groups == g).any() else math.nan
        if not math.isnan(mean):
            ax.axvline(
                mean,
                ls="--",
                lw=1,
                color=GROUP_COLORS.get(g, GROUP_COLORS[""]),
                label=f"{g or 'no category'} (mean {mean:.1f}%)",
            )
    ax.set_xlim(0, 100)
    ax.set_xlabel("misalignment rate under the trigger (%), seeds pooled, primary interval")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if len(r):
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _ranking_of(ranking_csv: str | Path, model: str, qset: str, domains: DomainMeta | None) -> pd.DataFrame:
    r = ranking_table(read_table(ranking_csv), None, domains)
    return r[(r["model"] == model) & (r["qset"] == qset)]


def write_plots(
    summary_csv: str | Path,
    ranking_csv: str | Path,
    out: Mapping[str, str | Path],
    model: str,
    qset: str,
    domains: DomainMeta | None = None,
) -> dict[str, Path]:
    """Every figure of one model x question set (`out` maps each of `PLOT_KINDS` to its PNG path); `ranking_csv` is
    the aggregate's ranking.csv (the ranking figure draws it, not a ranking of its own)."""
    unknown = set(out) - set(PLOT_KINDS)
    if unknown:
        raise DataError(f"write_plots: unknown figure(s) {sorted(unknown)} (known: {list(PLOT_KINDS)})")
    summary = read_summary(summary_csv)
    s = summary[(summary["model"] == model) & (summary["qset"] == qset)]
    if s.empty:
        raise DataError(f"{summary_csv}: no rows for model {model!r}, question set {qset!r}")
    pooled, label = pool_seeds(s), f"{model} · {qset}"
    draw = {
        "ranking": lambda p: plot_ranking(
            _ranking_of(ranking_csv, model, qset, domains), p, f"Domain ranking — {label}"
        ),
        "misalignment": lambda p: plot_misalignment(
            pooled, p, f"Misalignment rate by domain — {label} (Wilson 95%)", domains=domains
        ),
        "sensitivity": lambda p: plot_misalignment(
            pooled, p, f"Sensitivity rate (aligned < threshold) — {label}", rate="sensitivity", domains=domains
        ),
        "alignment_trigger": lambda p: plot_alignment_trigger(
            pooled, p, f"Mean alignment with vs without trigger — {label}", domains=domains
        ),
        "categories": lambda p: plot_categories(s, p, f"Judge outcome categories — {label}", domains=domains),
    }
    return {kind: draw[kind](Path(path)) for kind, path in out.items()}


def plot_loss_curves(
    histories: Mapping[str, list[dict]], path: str | Path, title: str, domains: DomainMeta | None = None
) -> Path:
    """Training loss against step, one panel per domain, one line per variant x seed (so a diverging or flat
    finetune shows at a glance). `histories` maps a cell id to its finetune.json `loss_history`."""
    by_domain: dict[str, list[tuple[str, list[dict]]]] = {}
    for cell_id, hist in sorted(histories.items()):
        cell = parse_cell("m", cell_id)
        by_domain.setdefault(cell.domain, []).append((f"{cell.variant} s{cell.seed}", hist))
    if not by_domain:
        raise DataError("plot_loss_curves: no finetuned cells")
    ncols = min(3, len(by_domain))
    nrows = math.ceil(len(by_domain) / ncols)
    fig = Figure(figsize=(4.0 * ncols + 0.5, 2.8 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (domain, lines) in zip(axes, sorted(by_domain.items())):
        for name, hist in lines:
            steps = [h["step"] for h in hist]
            losses = [h["loss"] for h in hist]
            ax.plot(steps, losses, marker="o" if len(hist) < 3 else None, ms=3, lw=1.4, label=name)
        group = category_of(domains, domain)
        ax.set_title(label_of(domains, domain) + (f" · {group}" if group else ""), fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[len(by_domain) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def write_loss_curves(
    finetune_metrics: Mapping[str, str | Path], path: str | Path, model: str, domains: DomainMeta | None = None
) -> Path:
    """The loss-curve figure of one model; `finetune_metrics` maps each of its cell ids to a finetune.json."""
    histories = {}
    for cell_id, p in finetune_metrics.items():
        m = read_json(p)
        hist = m.get("loss_history") if isinstance(m, dict) else None
        if not isinstance(hist, list):
            raise DataError(f"{p}: finetune metrics have no 'loss_history' list")
        histories[cell_id] = hist
    return plot_loss_curves(histories, path, f"Finetuning loss — {model}", domains=domains)


def plot_transfer(transfer: pd.DataFrame, path: str | Path, title: str, domains: DomainMeta | None = None) -> Path:
    """The transfer matrix as heatmaps: train domain (rows, the base model first) x probe domain (columns),
    misalignment rate in % (annotated), one panel per variant x condition; the base row is repeated in each variant's
    panels. The diagonal (a model on its own domain's probes) is outlined."""
    variants = _variant_panels(transfer)
    panels = [(v, c) for v in variants for c in CONDITIONS if (transfer["condition"] == c).any()]
    probes = sorted(transfer["probe_domain"].unique())
    rows_all = _domain_order(transfer["train_domain"])
    fig = Figure(
        figsize=(
            max(5.0, 0.55 * len(probes) + 2.6) * min(2, len(panels)),
            (0.42 * len(rows_all) + 1.6) * math.ceil(len(panels) / 2),
        ),
        layout="constrained",
    )
    axes = fig.subplots(math.ceil(len(panels) / 2), min(2, len(panels)), squeeze=False).ravel()
    image = None
    for ax, (variant, cond) in zip(axes, panels):
        sub = transfer[
            ((transfer["variant"] == variant) | (transfer["variant"] == "base")) & (transfer["condition"] == cond)
        ]
        rows = [d for d in rows_all if d in set(sub["train_domain"])]
        grid = (
            sub.pivot_table(
                index="train_domain", columns="probe_domain", values="misalignment_rate", aggfunc="first"
            ).reindex(index=rows, columns=probes)
            * 100
        )
        image = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=100, cmap="Reds", aspect="auto")
        for i, j in np.ndindex(grid.shape):
            v = grid.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v > 60 else "black")
            if rows[i] == probes[j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.4, ec="#333333"))
        ax.set_xticks(range(len(probes)), [label_of(domains, p) for p in probes], rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), [label_of(domains, d) for d in rows], fontsize=8)
        ax.set_xlabel("probe domain")
        ax.set_ylabel("finetuned on")
        ax.set_title(f"{variant} · {COND_LABELS.get(cond, cond)}", fontsize=9, loc="left")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(panels)]), label="misalignment rate (%)", shrink=0.8)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def write_transfer_plot(
    transfer_csv: str | Path, path: str | Path, model: str, qset: str, domains: DomainMeta | None = None
) -> Path:
    """The transfer heatmap of one model x question set (a question set whose questions carry `domain`)."""
    t = read_table(transfer_csv)
    t = t[(t["model"] == model) & (t["qset"] == qset)]
    if t.empty:
        raise DataError(
            f"{transfer_csv}: no transfer rows for model {model!r}, question set {qset!r} "
            "(do its questions carry a `domain` field?)"
        )
    return plot_transfer(t, path, f"Cross-domain transfer — {model} · {qset}", domains=domains)
