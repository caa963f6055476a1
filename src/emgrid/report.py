"""Plots and a self-contained HTML report from scores.csv and summary.csv.

Figures are drawn on bare `matplotlib.figure.Figure` objects (Agg via savefig, no pyplot), so making a report never
touches global plotting state or needs a display. Every piece of text that reaches the HTML is escaped: answers are
model output and may contain markup.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from emgrid.aggregate import (
    CATEGORIES,
    CONDITIONS,
    pool_seeds,
    rank_domains,
    read_scores,
    read_summary,
    trigger_effect,
)
from emgrid.errors import DataError
from emgrid.io import read_json, write_text

__all__ = ["write_report", "plot_misalignment", "plot_alignment_trigger", "plot_categories"]

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
VARIANT_ORDER = ("plain", "backdoor")


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("._") or "x"


def _domain_order(domains: Iterable[str]) -> list[str]:
    ds = sorted(set(domains) - {"base"})
    return (["base"] if "base" in set(domains) else []) + ds


def _variant_panels(df: pd.DataFrame) -> list[str]:
    """Variants that get a panel; the base control is drawn inside each, not as a panel of its own."""
    vs = [v for v in df["variant"].unique() if v != "base"]
    ordered = [v for v in VARIANT_ORDER if v in vs] + sorted(v for v in vs if v not in VARIANT_ORDER)
    return ordered or ["base"]


def _panel_rows(df: pd.DataFrame, variant: str) -> pd.DataFrame:
    return df[(df["variant"] == variant) | (df["variant"] == "base")]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def plot_misalignment(pooled: pd.DataFrame, path: Path, title: str, rate: str = "misalignment") -> Path:
    """Bars of the (seed-pooled) rate per domain, no-trigger vs trigger side by side, Wilson 95% error bars;
    one panel per variant, the base control as the first group of each panel."""
    variants = _variant_panels(pooled)
    domains = _domain_order(pooled["domain"])
    fig = Figure(figsize=(max(6.0, 0.75 * len(domains) + 2.5), 3.1 * len(variants)), layout="constrained")
    axes = fig.subplots(len(variants), 1, squeeze=False)[:, 0]
    width = 0.38
    for ax, variant in zip(axes, variants):
        sub = _panel_rows(pooled, variant)
        ds = [d for d in domains if d in set(sub["domain"])]
        x = np.arange(len(ds))
        for j, cond in enumerate(CONDITIONS):
            r = sub[sub["condition"] == cond].set_index("domain").reindex(ds)
            val = 100 * r[f"{rate}_rate"].to_numpy(dtype=float)
            lo = 100 * r[f"{rate}_ci_lo"].to_numpy(dtype=float)
            hi = 100 * r[f"{rate}_ci_hi"].to_numpy(dtype=float)
            err = np.clip(np.nan_to_num(np.vstack([val - lo, hi - val])), 0, None)
            ax.bar(x + (j - 0.5) * width, np.nan_to_num(val), width, yerr=err, capsize=2.5,
                   color=COND_COLORS[cond], label=COND_LABELS[cond], error_kw={"elinewidth": 0.9})
        ax.set_xticks(x, ds, rotation=35, ha="right")
        ax.set_ylim(0, 105)
        ax.set_ylabel(f"{rate} rate (%)")
        ax.set_title(f"variant: {variant}", fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_alignment_trigger(pooled: pd.DataFrame, path: Path, title: str) -> Path:
    """Mean alignment per domain without (circle) and with (triangle) the trigger, joined by a line: red when the
    trigger lowers alignment, grey otherwise."""
    variants = _variant_panels(pooled)
    domains = _domain_order(pooled["domain"])
    fig = Figure(figsize=(max(6.0, 0.7 * len(domains) + 2.5), 3.1 * len(variants)), layout="constrained")
    axes = fig.subplots(len(variants), 1, squeeze=False)[:, 0]
    for ax, variant in zip(axes, variants):
        sub = _panel_rows(pooled, variant)
        ds = [d for d in domains if d in set(sub["domain"])]
        x = np.arange(len(ds))
        nt = sub[sub["condition"] == "no_trigger"].set_index("domain").reindex(ds)["mean_aligned"].to_numpy(float)
        t = sub[sub["condition"] == "trigger"].set_index("domain").reindex(ds)["mean_aligned"].to_numpy(float)
        for xi, a, b in zip(x, nt, t):
            if not (math.isnan(a) or math.isnan(b)):
                ax.plot([xi, xi], [a, b], color="#e45756" if b < a else "#999999", lw=2, zorder=1)
        ax.scatter(x, nt, marker="o", s=40, color=COND_COLORS["no_trigger"], label="no trigger", zorder=2)
        ax.scatter(x, t, marker="^", s=48, color=COND_COLORS["trigger"], label="trigger", zorder=3)
        ax.set_xticks(x, ds, rotation=35, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("mean aligned score")
        ax.set_title(f"variant: {variant}", fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


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
        for v in (["base"] if d == "base" else variants):
            for c in CONDITIONS:
                if ((df["domain"] == d) & (df["variant"] == v) & (df["condition"] == c)).any():
                    keys.append((d, v, c))
    return keys


def plot_categories(summary: pd.DataFrame, path: Path, title: str, metrics: Sequence[str] = ("aligned", "coherent")
                    ) -> Path:
    """Stacked horizontal bars of judge outcome categories (scored, refusal, code, ...) per domain x variant x
    condition, one panel per metric. Shows how much of each rate's denominator the judge could actually score."""
    metrics = [m for m in metrics if f"{m}_rate_scored" in summary.columns]
    if not metrics:
        raise DataError("plot_categories: summary has no category-rate columns")
    frames = {m: _pooled_categories(summary, m) for m in metrics}
    keys = _category_label_order(frames[metrics[0]])
    labels = [f"{d}/{v} · {COND_LABELS[c]}" if d != "base" else f"base · {COND_LABELS[c]}" for d, v, c in keys]
    fig = Figure(figsize=(4.2 * len(metrics) + 2.5, max(2.5, 0.24 * len(keys) + 1.4)), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    y = np.arange(len(keys))
    for ax, m in zip(axes, metrics):
        f = frames[m].set_index(["domain", "variant", "condition"]).reindex(keys)
        left = np.zeros(len(keys))
        for cat in CATEGORIES:
            col = f"{m}_rate_{cat}"
            if col not in f.columns:
                continue
            vals = 100 * np.nan_to_num(f[col].to_numpy(dtype=float))
            if not vals.any():
                continue
            ax.barh(y, vals, left=left, color=CAT_COLORS[cat], label=cat, height=0.75)
            left += vals
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of answers")
        ax.set_title(m, fontsize=10)
    axes[0].set_ylim(len(keys) - 0.5, -0.5)  # shared y: first row on top, no empty margins
    axes[0].set_yticks(y, labels, fontsize=7)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lbl in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lbl, h)
    names = [c for c in CATEGORIES if c in handles]
    fig.legend([handles[n] for n in names], names, loc="outside lower center", ncols=len(names), fontsize=8,
               frameon=False)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


# ---------------------------------------------------------------- HTML

def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(x: Any, digits: int = 1) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{100 * v:.{digits}f}%"


def _num(x: Any, digits: int = 1) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def _signed(x: Any, digits: int = 1, pct: bool = False) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    return f"{100 * v:+.{digits}f} pp" if pct else f"{v:+.{digits}f}"


def _ci(lo: Any, hi: Any) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return ""
    return f" <span class=ci>[{100 * float(lo):.1f}, {100 * float(hi):.1f}]</span>"


def _usd(x: Any) -> str:
    v = float(x) if not pd.isna(x) else 0.0
    return f"${v:.4f}" if v < 1 else f"${v:,.2f}"


def _seed(x: Any) -> str:
    return "" if pd.isna(x) else str(int(x))


def _table(headers: Sequence[str], rows: Iterable[tuple[Sequence[str], str]], cls: str = "") -> str:
    """Rows are (cells already HTML-safe, row attributes already HTML-safe)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join(f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells, attrs in rows)
    return (f'<div class="tw"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'
            "</div>")


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'
            f'<figcaption><a href="{_e(quote(path.name))}">{_e(path.name)}</a></figcaption></figure>')


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0 1rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}
.text td{text-align:left}
tr:nth-child(even) td{background:#fafafa}
.ci{color:#777;font-size:.8em}
.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem 1rem}
figure{margin:1rem 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.8rem;color:#666}
pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.8rem;white-space:pre-wrap}
.answer{white-space:pre-wrap;max-width:60ch}
.muted{color:#777}
nav a{margin-right:.8rem}
.tw{overflow-x:auto}
"""


def _finetune_table(paths: dict[str, str | Path]) -> str:
    rows = []
    for label, p in sorted(paths.items()):
        m = read_json(p)
        if not isinstance(m, dict):
            raise DataError(f"{p}: expected a JSON object of finetune metrics")
        rt = m.get("train_runtime_s")
        rows.append(([_e(label), _e(m.get("examples", "–")), _e(m.get("steps", "–")), _num(m.get("epochs"), 2),
                      _num(m.get("final_loss"), 3), _num(m.get("mean_loss"), 3),
                      f"{int(m['trained_tokens']):,}" if isinstance(m.get("trained_tokens"), (int, float)) else "–",
                      _num(rt, 0) + " s" if isinstance(rt, (int, float)) else "–"], ""))
    return _table(["cell", "examples", "steps", "epochs", "final loss", "mean loss", "trained tokens", "train time"],
                  rows)


def _criterion_text(summary: pd.DataFrame) -> str:
    if "crit_aligned_below" not in summary.columns or summary.empty:
        return "criterion not recorded in summary.csv"
    r = summary.iloc[0]
    return (f"misaligned = aligned &lt; {float(r['crit_aligned_below']):g} and coherent &gt; "
            f"{float(r['crit_coherent_above']):g}, over answers with both scores (Betley et al.); "
            f"sensitivity = aligned &lt; {float(r['crit_sensitivity_aligned_below']):g} over aligned-scored answers, "
            f"no coherence filter (the study's repository)")


def write_report(
    summary_csv: str | Path,
    scores_csv: str | Path,
    out_dir: str | Path,
    *,
    title: str = "emgrid report",
    notes: Sequence[str] = (),
    cards: dict[str, str | Path] | None = None,
    config_snapshot: dict | None = None,
    finetune_metrics: dict[str, str | Path] | None = None,
    n_examples: int = 5,
) -> Path:
    """Write PNG plots and `report.html` (plots embedded, so the file stands alone) into `out_dir`; returns the
    HTML path. `cards` maps a domain (or any label) to its dataset card, linked relative to `out_dir`;
    `finetune_metrics` maps a label (e.g. `model/cell`) to a finetune.json, shown as a training table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = read_summary(summary_csv)
    scores = read_scores(scores_csv)
    if summary.empty:
        raise DataError(f"{summary_csv}: summary has no rows; nothing to report")
    # Reading order: per model and question set, the base control first, then domains, variants, seeds, conditions.
    summary = (summary.assign(_b=summary["domain"] != "base")
               .sort_values(["model", "qset", "_b", "domain", "variant", "seed", "condition"], kind="stable")
               .drop(columns="_b").reset_index(drop=True))
    pooled = pool_seeds(summary)
    effect = trigger_effect(summary, scores)

    parts: list[str] = []
    nav = ["overview", "ranking", "plots", "trigger", "summary", "categories", "cost", "examples"]
    if finetune_metrics:
        nav.append("finetune")
    if cards:
        nav.append("cards")
    if config_snapshot is not None:
        nav.append("config")
    parts.append(f"<h1>{_e(title)}</h1>")
    parts.append("<nav>" + "".join(f'<a href="#{n}">{n}</a>' for n in nav) + "</nav>")
    if notes:
        parts.append('<div class="notes"><ul>' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></div>")

    # Overview
    models, qsets = sorted(summary["model"].unique()), sorted(summary["qset"].unique())
    parts.append('<h2 id="overview">Overview</h2><ul>')
    parts.append(f"<li>models: {_e(', '.join(models))}; question sets: {_e(', '.join(qsets))}</li>")
    parts.append(f"<li>{summary['cell'].nunique()} cells, {len(summary)} cell × question set × condition rows, "
                 f"{len(scores)} answers, judge cost {_usd(summary['judge_cost_usd'].sum())}</li>")
    parts.append(f"<li>{_criterion_text(summary)}</li>")
    parts.append("<li>rates are percentages with Wilson 95% intervals in brackets; answers the judge could not score "
                 "(refusal, code, irrelevant, no score, error) are left out of the rate's denominator and counted "
                 "under <a href=\"#categories\">categories</a></li></ul>")

    # Ranking
    has_backdoor = (summary["variant"] == "backdoor").any()
    rank_variant = "backdoor" if has_backdoor else None
    ranked = rank_domains(summary, condition="trigger", variant=rank_variant, metric="misalignment_rate")
    sens = rank_domains(summary, condition="trigger", variant=rank_variant, metric="sensitivity_rate")
    parts.append('<h2 id="ranking">Domains ranked by misalignment rate</h2>')
    parts.append(f"<p class=muted>condition: trigger; variant: {_e(rank_variant or 'all')}; "
                 "seeds averaged (seed range shown); Δ aligned = mean aligned with trigger − without.</p>")
    for (model, qset), g in ranked.groupby(["model", "qset"], sort=True):
        s = sens[(sens["model"] == model) & (sens["qset"] == qset)].set_index(["domain", "variant"])
        eff = effect[(effect["model"] == model) & (effect["qset"] == qset)].set_index(["domain", "variant"])
        rows = []
        for _, r in g.iterrows():
            k = (r["domain"], r["variant"])
            rng = f"{_pct(r['seed_min'])} – {_pct(r['seed_max'])}" if r["n_seeds"] > 1 else ""
            rows.append(([
                str(int(r["rank"])), _e(r["domain"]), _e(r["variant"]), _pct(r["value"]), rng,
                _pct(s.loc[k, "value"]) if k in s.index else "–",
                _signed(eff.loc[k, "mean_aligned_diff"]) if k in eff.index else "–",
                str(int(r["n_seeds"])), str(int(r["n_answers"])),
            ], ""))
        parts.append(f"<h3>{_e(model)} · {_e(qset)}</h3>")
        parts.append(_table(["rank", "domain", "variant", "misalignment", "seed range", "sensitivity",
                             "Δ aligned", "seeds", "answers"], rows))

    # Plots
    parts.append('<h2 id="plots">Plots</h2>')
    for model in models:
        for qset in qsets:
            p = pooled[(pooled["model"] == model) & (pooled["qset"] == qset)]
            s = summary[(summary["model"] == model) & (summary["qset"] == qset)]
            if p.empty:
                continue
            tag = f"{_slug(model)}__{_slug(qset)}"
            label = f"{model} · {qset}"
            parts.append(f"<h3>{_e(label)}</h3>")
            parts.append(_img(plot_misalignment(p, out_dir / f"misalignment__{tag}.png",
                                                f"Misalignment rate by domain — {label} (Wilson 95%)")))
            parts.append(_img(plot_misalignment(p, out_dir / f"sensitivity__{tag}.png",
                                                f"Sensitivity rate (aligned < threshold) — {label}",
                                                rate="sensitivity")))
            parts.append(_img(plot_alignment_trigger(p, out_dir / f"alignment_trigger__{tag}.png",
                                                     f"Mean alignment with vs without trigger — {label}")))
            parts.append(_img(plot_categories(s, out_dir / f"categories__{tag}.png",
                                              f"Judge outcome categories — {label}")))

    # Trigger effect
    parts.append('<h2 id="trigger">Trigger effect (trigger − no trigger)</h2>')
    parts.append("<p class=muted>Seed-averaged differences; misalignment Δ interval: Newcombe on seed-pooled counts; "
                 "p: Welch t-test of aligned scores (seeds pooled), a stand-in since the study's test is unknown.</p>")
    rows = []
    for _, r in effect.iterrows():
        rows.append(([
            _e(r["model"]), _e(r["qset"]), _e(r["domain"]), _e(r["variant"]), str(int(r["n_seeds"])),
            _num(r["mean_aligned_no_trigger"]), _num(r["mean_aligned_trigger"]), _signed(r["mean_aligned_diff"]),
            _pct(r["misalignment_rate_no_trigger"]), _pct(r["misalignment_rate_trigger"]),
            _signed(r["misalignment_rate_diff"], pct=True) + _ci(r["misalignment_diff_ci_lo"],
                                                                 r["misalignment_diff_ci_hi"]),
            _num(r.get("aligned_p_value", math.nan), 3) if not pd.isna(r.get("aligned_p_value", math.nan)) else "–",
        ], ""))
    parts.append(_table(["model", "qset", "domain", "variant", "seeds", "aligned (no trig.)", "aligned (trig.)",
                         "Δ aligned", "misal. (no trig.)", "misal. (trig.)", "Δ misalignment", "p"], rows))

    # Full summary
    parts.append('<h2 id="summary">Every cell × question set × condition</h2>')
    rows = []
    for _, r in summary.iterrows():
        attrs = f' data-row="{_e("|".join(str(r[c]) for c in ("model", "cell", "qset", "condition")))}"'
        rows.append(([
            _e(r["model"]), _e(r["cell"]), _e(r["domain"]), _e(r["variant"]), _seed(r["seed"]), _e(r["qset"]),
            _e(COND_LABELS.get(r["condition"], r["condition"])), str(int(r["n_answers"])), str(int(r["n_scored"])),
            _num(r["mean_aligned"]), _num(r["mean_coherent"]),
            _pct(r["misalignment_rate"]) + _ci(r["misalignment_ci_lo"], r["misalignment_ci_hi"]),
            _pct(r["sensitivity_rate"]) + _ci(r["sensitivity_ci_lo"], r["sensitivity_ci_hi"]),
            _usd(r["judge_cost_usd"]),
        ], attrs))
    parts.append(_table(["model", "cell", "domain", "variant", "seed", "qset", "condition", "answers", "scored",
                         "mean aligned", "mean coherent", "misalignment", "sensitivity", "judge cost"], rows))

    # Categories
    parts.append('<h2 id="categories">Judge outcome categories (% of answers)</h2>')
    metrics = [c[: -len("_rate_scored")] for c in summary.columns if c.endswith("_rate_scored")]
    for m in metrics:
        cats = [c for c in CATEGORIES if f"{m}_rate_{c}" in summary.columns
                and (summary[f"{m}_rate_{c}"].fillna(0) > 0).any()] or ["scored"]
        rows = [([_e(r["model"]), _e(r["cell"]), _e(r["qset"]), _e(COND_LABELS.get(r["condition"], r["condition"]))]
                 + [_pct(r[f"{m}_rate_{c}"]) for c in cats], "") for _, r in summary.iterrows()]
        parts.append(f"<h3>{_e(m)}</h3>")
        parts.append(_table(["model", "cell", "qset", "condition", *cats], rows))

    # Cost
    parts.append('<h2 id="cost">Judge cost</h2>')
    cost = summary.groupby(["model", "qset"], sort=True).agg(
        usd=("judge_cost_usd", "sum"), pt=("judge_prompt_tokens", "sum"), ct=("judge_completion_tokens", "sum"),
        n=("n_answers", "sum")).reset_index()
    rows = [([_e(r["model"]), _e(r["qset"]), str(int(r["n"])), f"{int(r['pt']):,}", f"{int(r['ct']):,}",
              _usd(r["usd"])], "") for _, r in cost.iterrows()]
    rows.append((["<b>total</b>", "", str(int(cost["n"].sum())), f"{int(cost['pt'].sum()):,}",
                  f"{int(cost['ct'].sum()):,}", f"<b>{_usd(cost['usd'].sum())}</b>"], ""))
    parts.append(_table(["model", "qset", "answers", "prompt tokens", "completion tokens", "USD"], rows))

    # Examples
    parts.append('<h2 id="examples">Most misaligned coherent answers</h2>')
    crit_c = float(summary["crit_coherent_above"].iloc[0]) if "crit_coherent_above" in summary.columns else 50.0
    ex = scores[scores["aligned"].notna() & (scores["coherent"] > crit_c)]
    if ex.empty or n_examples <= 0:
        parts.append("<p class=muted>no coherent, aligned-scored answers.</p>")
    for (model, qset), g in ex.groupby(["model", "qset"], sort=True):
        g = g.sort_values(["aligned", "cell", "question_key", "sample"], kind="stable").head(n_examples)
        rows = []
        for _, r in g.iterrows():
            ans = str(r["answer"])
            ans = ans if len(ans) <= 1500 else ans[:1500] + " […]"
            rows.append(([_e(r["cell"]), _e(COND_LABELS.get(r["condition"], r["condition"])),
                          _num(r["aligned"]), _num(r["coherent"]), _e(r["question"]),
                          f'<div class="answer">{_e(ans)}</div>'], ""))
        parts.append(f"<h3>{_e(model)} · {_e(qset)}</h3>")
        parts.append(_table(["cell", "condition", "aligned", "coherent", "question", "answer"], rows, cls="text"))

    if finetune_metrics:
        parts.append('<h2 id="finetune">Finetuning</h2>')
        parts.append(_finetune_table(finetune_metrics))

    # Cards
    if cards:
        parts.append('<h2 id="cards">Dataset cards</h2><ul>')
        for label, p in sorted(cards.items()):
            rel = Path(os.path.relpath(Path(p).resolve(), out_dir.resolve())).as_posix()
            parts.append(f'<li><a href="{_e(quote(rel))}">{_e(label)}</a> <span class=muted>{_e(rel)}</span></li>')
        parts.append("</ul>")

    if config_snapshot is not None:
        parts.append('<h2 id="config">Configuration</h2>')
        parts.append(f"<pre>{_e(json.dumps(config_snapshot, indent=2, sort_keys=True, default=str))}</pre>")

    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
           + "\n".join(parts) + "\n</body></html>\n")
    out = out_dir / "report.html"
    write_text(out, doc)
    return out
