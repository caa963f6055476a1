"""The self-contained HTML report page, assembled from the declared figure and table files.

The page is `templates/report.html.j2`; each section is one function here (inputs -> template context, or None to
leave the section out) plus one template `templates/sections/<id>.html.j2`. Figures are embedded as data URIs (the
page works offline, on its own) and linked to their PNG files beside it. Jinja autoescaping is on: answers are model
output and may contain markup.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

import pandas as pd

from emgrid.scores import Criterion, read_scores
from emgrid.efficacy.summary import not_taken, read_table as read_efficacy
from emgrid.stats.describe import describe_interval, level_text
from emgrid.errors import DataError
from emgrid.io import write_text
from emgrid.report.answers import criterion_of
from emgrid.report.captions import PLOT_CAPTIONS, STEERING_CAPTIONS, caption
from emgrid.report.html import render
from emgrid.report.plots import PLOT_KINDS
from emgrid.report.tables import sorted_summary, read_table

__all__ = ["PageInputs", "Section", "SECTIONS", "write_page"]


# --------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PageInputs:
    """What the page is built from: the page rule's named input files, plus the page's own settings.

    `files` maps an input name (the page rule's `input:` key, e.g. "ranking", "plots") to its paths; a section
    reads only the names it needs, so a new section needs only a new named input.
    """

    html: Path
    files: Mapping[str, Sequence[Path]]
    title: str = "emgrid report"
    notes: Sequence[str] = ()
    cards: Mapping[str, Path] = field(default_factory=dict)
    config_snapshot: Any = None
    n_examples: int = 5
    level: float = 0.95  # analysis.bootstrap.level: the level of every interval but the answer-level Wilson ones

    def many(self, name: str) -> list[Path]:
        return [Path(p) for p in self.files.get(name, ())]

    def one(self, name: str) -> Path | None:
        paths = self.many(name)
        if len(paths) > 1:
            raise DataError(f"report page: input {name!r} should be one file, got {len(paths)}")
        return paths[0] if paths else None

    def table(self, name: str) -> pd.DataFrame | None:
        p = self.one(name)
        return None if p is None else read_table(p)

    def rel(self, path: Path) -> str:
        """`path` as a URL relative to the page's folder."""
        return quote(Path(os.path.relpath(Path(path).resolve(), self.html.parent.resolve())).as_posix())

    def required(self, name: str) -> Path:
        p = self.one(name)
        if p is None:
            raise DataError(f"report page: no {name!r} input (the page rule must name it)")
        return p

    @cached_property
    def summary(self) -> pd.DataFrame:
        return sorted_summary(self.required("summary"))

    @cached_property
    def scores(self) -> pd.DataFrame:
        return read_scores(self.required("scores"))

    @cached_property
    def criterion(self) -> Criterion:
        """The criterion the summary was computed with (its `crit_*` columns): the captions quote it."""
        return criterion_of(self.summary)

    def caption(self, name: str, model: str = "", qset: str = "") -> str:
        """Caption `name` of the one registry (emgrid.report.captions), as Snakemake's report shows it."""
        return caption(name, model, qset, self.criterion, self.level)

    def figure(self, path: Path, caption: str) -> dict:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return {
            "src": f"data:image/png;base64,{data}",
            "href": self.rel(path),
            "name": Path(path).name,
            "alt": Path(path).stem,
            "caption": caption,
        }


# ------------------------------------------------------------------------------------------------- sections


def headline(inp: PageInputs) -> dict | None:
    t = inp.table("headline")
    if t is None or t.empty:
        return None
    return {"rows": t.to_dict("records"), "alpha": f"{float(t['alpha'].iloc[0]):g}", "level": level_text(inp.level)}


def overview(inp: PageInputs) -> dict:
    s, crit = inp.summary, inp.criterion
    return {
        "models": sorted(s["model"].unique()),
        "qsets": sorted(s["qset"].unique()),
        "n_cells": s["cell"].nunique(),
        "n_rows": len(s),
        "n_answers": len(inp.scores),
        "cost": s["judge_cost_usd"].sum(),
        "crit": crit,
        "interval": describe_interval(inp.level),
        "level": level_text(inp.level),
    }


def efficacy(inp: PageInputs) -> dict | None:
    """Did each finetune take? Read before the EM results: a cell indistinguishable from base says nothing about
    resistance to emergent misalignment."""
    p = inp.one("efficacy")
    if p is None:
        return None
    t = read_efficacy(p)
    snapshot = inp.config_snapshot if isinstance(inp.config_snapshot, dict) else {}
    rows = t.sort_values(["model", "domain", "variant", "cell"], kind="stable").to_dict("records")
    return {
        "rows": rows,
        "not_taken": [f"{m}/{c}" for m, c in not_taken(t)],
        "dropped": bool(snapshot.get("drop_untaken_cells")),
        "method": inp.caption("efficacy"),
    }


def ranking(inp: PageInputs) -> dict | None:
    """The clustered ranking (aggregate's ranking.csv) under the trigger, backdoor cells when there are any, with
    each domain's label/category (report ranking table) and paired Δ aligned (aggregate's trigger_effect.csv)."""
    stats, labels, by_cat = inp.table("ranking_stats"), inp.table("ranking"), inp.table("ranking_by_category")
    if stats is None or stats.empty:
        return None
    scope = "backdoor" if (stats["variant"] == "backdoor").any() else "plain"
    r = stats[(stats["condition"] == "trigger") & (stats["variant"] == scope)]
    meta = (
        {}
        if labels is None
        else {d: (lab, cat) for d, lab, cat in labels[["domain", "label", "category"]].itertuples(index=False)}
    )
    effects = inp.table("trigger_stats")
    diff = (
        {}
        if effects is None
        else {
            (m, q, d, v): x
            for m, q, d, v, x in effects[["model", "qset", "domain", "variant", "aligned_diff"]].itertuples(index=False)
        }
    )
    r = r.assign(
        label=[meta.get(d, (d, ""))[0] for d in r["domain"]],
        category=[meta.get(d, (d, ""))[1] for d in r["domain"]],
        aligned_diff=[
            diff.get((m, q, d, scope if d != "base" else "base"), float("nan"))
            for m, q, d in r[["model", "qset", "domain"]].itertuples(index=False)
        ],
    )
    groups = [
        {
            "model": m,
            "qset": q,
            "rows": g.to_dict("records"),
            "by_category": []
            if by_cat is None
            else by_cat[(by_cat["model"] == m) & (by_cat["qset"] == q)].to_dict("records"),
        }
        for (m, q), g in r.groupby(["model", "qset"], sort=True)
    ]
    return {"scope": scope, "groups": groups, "method": inp.caption("ranking"), "level": level_text(inp.level)}


def _plot_key(path: Path) -> tuple[str, str, str]:
    """(model, qset, kind) of a figure at `.../{model}/{qset}/{kind}.png` (the workflow's layout)."""
    return path.parent.parent.name, path.parent.name, path.stem


def plots(inp: PageInputs) -> dict | None:
    by_group: dict[tuple[str, str], dict[str, Path]] = {}
    for p in inp.many("plots"):
        model, qset, kind = _plot_key(p)
        by_group.setdefault((model, qset), {})[kind] = p
    if not by_group:
        return None
    order = list(PLOT_KINDS)
    return {
        "groups": [
            {
                "model": m,
                "qset": q,
                "figures": [
                    inp.figure(figs[k], inp.caption(PLOT_CAPTIONS[k], m, q) if k in PLOT_CAPTIONS else k)
                    for k in sorted(figs, key=lambda k: (order.index(k) if k in order else len(order), k))
                ],
            }
            for (m, q), figs in sorted(by_group.items())
        ]
    }


def trigger(inp: PageInputs) -> dict | None:
    t = inp.table("trigger_stats")
    return None if t is None or t.empty else {"rows": t.to_dict("records"), "method": inp.caption("trigger_effect")}


def transfer(inp: PageInputs) -> dict | None:
    figures = [
        inp.figure(p, inp.caption("transfer_plot", p.parent.parent.name, p.parent.name))
        for p in inp.many("transfer_plots")
    ]
    contrast = inp.table("transfer_contrast")
    if not figures and (contrast is None or contrast.empty):
        return None
    return {
        "figures": figures,
        "contrast": [] if contrast is None else contrast.to_dict("records"),
        "method": inp.caption("transfer_contrast"),
    }


def steering(inp: PageInputs) -> dict | None:
    """Misalignment directions and steering (docs/steering.md): the directions (or why a source has none), the
    steering figures, and the steered runs with their paired differences from the unsteered target."""
    directions = inp.table("steering_directions")
    if directions is None:
        return None
    matrix = inp.table("steering")
    figures = [
        inp.figure(p, inp.caption(STEERING_CAPTIONS[p.stem]) if p.stem in STEERING_CAPTIONS else p.stem)
        for p in inp.many("steering_plots")
    ]
    rows = [] if matrix is None else matrix.sort_values(["model", "target", "source", "layer", "kind", "scale"])
    return {
        "directions": directions.to_dict("records"),
        "figures": figures,
        "rows": [] if matrix is None else rows.to_dict("records"),
        "method": inp.caption("steering"),
    }


def summary(inp: PageInputs) -> dict:
    return {"rows": inp.summary.to_dict("records")}


def categories(inp: PageInputs) -> dict | None:
    t = inp.table("categories")
    if t is None:
        return None
    cats = [c for c in t.columns if c not in ("model", "cell", "qset", "condition", "metric")]
    return {
        "cats": cats,
        "metrics": [{"metric": m, "rows": g.to_dict("records")} for m, g in t.groupby("metric", sort=False)],
    }


def cost(inp: PageInputs) -> dict | None:
    t = inp.table("cost")
    if t is None:
        return None
    total = {c: t[c].sum() for c in ("answers", "prompt_tokens", "completion_tokens", "usd")}
    return {"rows": t.to_dict("records"), "total": total}


def examples(inp: PageInputs) -> dict:
    """The most misaligned coherent answers per model x question set (the answer browser has all of them)."""
    crit = inp.criterion
    sc = inp.scores
    ex = sc[crit.indicators(sc)["misaligned"].notna()]  # scored under the criterion (coherent, if it filters)
    groups = []
    for (model, qset), g in ex.groupby(["model", "qset"], sort=True):
        g = g.sort_values(["aligned", "cell", "question_key", "sample"], kind="stable").head(inp.n_examples)
        rows = [
            {**r, "answer": str(r["answer"]) if len(str(r["answer"])) <= 1500 else str(r["answer"])[:1500] + " […]"}
            for r in g.to_dict("records")
        ]
        groups.append({"model": model, "qset": qset, "rows": rows})
    return {"groups": groups if inp.n_examples > 0 else [], "n": inp.n_examples}


#: Fewer domains than this give correlations and AUCs without power: the page says the analysis shows plumbing only.
FEW_DOMAINS = 6


def _analysis_groups(inp: PageInputs, tests: pd.DataFrame, plots_name: str, caption_name: str) -> list[dict]:
    figs = {(p.parent.parent.name, p.parent.name): p for p in inp.many(plots_name)}
    groups = []
    for (m, q), g in tests.groupby(["model", "qset"], sort=True):
        fig = figs.get((str(m), str(q)))
        groups.append(
            {
                "model": m,
                "qset": q,
                "rows": g.to_dict("records"),
                "figure": None if fig is None else inp.figure(fig, inp.caption(caption_name, str(m), str(q))),
            }
        )
    return groups


def _few(tests: pd.DataFrame) -> int | None:
    n = int(tests["n_domains"].max()) if len(tests) else 0
    return n if n < FEW_DOMAINS else None


def mia(inp: PageInputs) -> dict | None:
    """Membership-inference prior: correlation and leave-pair-out AUC of each feature, with its scatter."""
    t = inp.table("mia_tests")
    if t is None:
        return None
    target = str(t["target"].iloc[0]) if len(t) and "target" in t.columns else ""
    return {"groups": _analysis_groups(inp, t, "mia_plots", "mia_scatter"), "few": _few(t), "target": target}


def diversity(inp: PageInputs) -> dict | None:
    """Topical diversity per domain, its correlation with the rate, the scatter and the by-category box plot."""
    t, d = inp.table("diversity_tests"), inp.table("diversity_domains")
    if t is None:
        return None
    cat = inp.one("diversity_category_plot")
    target = str(t["target"].iloc[0]) if len(t) and "target" in t.columns else ""
    domains = [] if d is None or d.empty else d.to_dict("records")
    return {
        "groups": _analysis_groups(inp, t, "diversity_plots", "diversity_scatter"),
        "few": _few(t),
        "target": target,
        "domains": domains,
        "category_figure": None if cat is None else inp.figure(cat, inp.caption("diversity_by_category")),
    }


def answers(inp: PageInputs) -> dict | None:
    pages = inp.many("answers")
    if not pages:
        return None
    return {"pages": [{"model": p.parent.name, "qset": p.stem, "href": inp.rel(p)} for p in sorted(pages)]}


def finetune(inp: PageInputs) -> dict | None:
    t, curves = inp.table("finetune"), inp.many("loss_curves")
    if (t is None or t.empty) and not curves:
        return None
    return {
        "rows": [] if t is None else t.to_dict("records"),
        "figures": [inp.figure(p, inp.caption("loss_curves", p.parent.name)) for p in curves],
    }


def cards(inp: PageInputs) -> dict | None:
    if not inp.cards:
        return None
    return {
        "cards": [
            {
                "label": k,
                "href": inp.rel(Path(p)),
                "path": Path(os.path.relpath(Path(p).resolve(), inp.html.parent.resolve())).as_posix(),
            }
            for k, p in sorted(inp.cards.items())
        ]
    }


def config(inp: PageInputs) -> dict | None:
    if inp.config_snapshot is None:
        return None
    return {"text": json.dumps(inp.config_snapshot, indent=2, sort_keys=True, default=str)}


@dataclass(frozen=True)
class Section:
    """One section of the page: `build` returns its template context (None: leave it out); the template is
    `sections/<id>.html.j2` and `id` is also the page anchor."""

    id: str
    title: str
    build: Callable[[PageInputs], dict | None]


SECTIONS: tuple[Section, ...] = (
    Section("headline", "Headline: does the trigger lower alignment, domain by domain?", headline),
    Section("overview", "Overview", overview),
    Section("efficacy", "Did the finetune take? In-domain efficacy", efficacy),
    Section("ranking", "Domains ranked by misalignment rate", ranking),
    Section("plots", "Plots", plots),
    Section("trigger", "Trigger effect (trigger − no trigger, paired)", trigger),
    Section("transfer", "Cross-domain transfer", transfer),
    Section("steering", "Misalignment directions and steering", steering),
    Section("summary", "Every cell × question set × condition", summary),
    Section("categories", "Judge outcome categories (% of answers)", categories),
    Section("cost", "Judge cost", cost),
    Section("mia", "Membership-inference prior (before finetuning)", mia),
    Section("diversity", "Topical diversity of the domains' data", diversity),
    Section("examples", "Most misaligned coherent answers", examples),
    Section("answers", "Every answer", answers),
    Section("finetune", "Finetuning", finetune),
    Section("cards", "Dataset cards", cards),
    Section("config", "Configuration", config),
)


def write_page(inp: PageInputs, sections: Sequence[Section] = SECTIONS) -> Path:
    """Render every section that has its inputs into `inp.html`."""
    built = [
        {"id": s.id, "title": s.title, "template": f"sections/{s.id}.html.j2", "ctx": ctx}
        for s in sections
        if (ctx := s.build(inp)) is not None
    ]
    write_text(inp.html, render("report.html.j2", title=inp.title, notes=list(inp.notes), sections=built))
    return inp.html
