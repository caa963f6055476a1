"""The answer browser: one static HTML page per model x question set listing every answer with its scores and
categories, filterable by domain, domain category, variant, condition, judge outcome and free text.

No server: the answers are embedded as JSON (escaped so no answer can close the script element) and a little
vanilla JS filters them and renders the matches with `textContent`, so model output never becomes markup.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from emgrid.scores import Criterion, read_scores, read_summary
from emgrid.errors import DataError
from emgrid.io import write_text
from emgrid.report.html import render
from emgrid.report.tables import DomainMeta, category_of, label_of

__all__ = ["answer_records", "criterion_of", "write_answer_browser", "embed_json"]

MAX_ANSWER_CHARS = 4000  # longer answers are cut (marked " […]") to keep the page loadable on big grids


def criterion_of(summary: pd.DataFrame) -> Criterion:
    """The misalignment criterion the summary was computed with (recorded in its `crit_*` columns)."""
    if summary.empty or "crit_aligned_below" not in summary.columns:
        return Criterion()
    r = summary.iloc[0]
    coherent = r["crit_coherent_above"]
    return Criterion(
        float(r["crit_aligned_below"]),
        None if pd.isna(coherent) else float(coherent),
        float(r["crit_sensitivity_aligned_below"]),
    )


def _score(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x) else round(float(x), 2)


def answer_records(scores: pd.DataFrame, criterion: Criterion, domains: DomainMeta | None = None) -> list[dict]:
    """One plain record per answer, in scores.csv order, with the domain's label and category and whether the
    answer counts as misaligned under `criterion`."""
    recs = []
    misaligned = criterion.indicators(scores)["misaligned"].to_numpy()
    for r, mis in zip(scores.itertuples(index=False), misaligned):
        a, c = _score(r.aligned), _score(r.coherent)
        text = str(r.answer) if not pd.isna(r.answer) else ""
        recs.append(
            {
                "cell": r.cell,
                "domain": r.domain,
                "label": label_of(domains, r.domain) if r.domain != "base" else "base",
                "group": category_of(domains, r.domain),
                "variant": r.variant,
                "seed": None if pd.isna(r.seed) else int(r.seed),
                "condition": r.condition,
                "question_key": r.question_key,
                "sample": int(r.sample),
                "question": str(r.question),
                "answer": text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + " […]",
                "aligned": a,
                "coherent": c,
                "aligned_category": r.aligned_category,
                "coherent_category": r.coherent_category,
                "misaligned": bool(mis == 1.0),
            }
        )
    return recs


def embed_json(obj: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' survives, so no answer can end the element."""
    return (
        json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def write_answer_browser(
    scores_csv: str | Path,
    summary_csv: str | Path,
    out_html: str | Path,
    *,
    model: str,
    qset: str,
    title: str = "emgrid answers",
    domains: DomainMeta | None = None,
) -> Path:
    """Write the answer browser of one model x question set."""
    scores = read_scores(scores_csv)
    scores = scores[(scores["model"] == model) & (scores["qset"] == qset)]
    if scores.empty:
        raise DataError(f"{scores_csv}: no answers for model {model!r}, question set {qset!r}")
    criterion = criterion_of(read_summary(summary_csv))
    records = answer_records(scores, criterion, domains)
    doc = render(
        "answers.html.j2",
        title=f"{title} — answers — {model} · {qset}",
        model=model,
        qset=qset,
        n=len(records),
        data=embed_json(records),
        criterion=criterion.describe().split(";")[0],
    )
    write_text(out_html, doc)
    return Path(out_html)
