"""The whole report in one call, with the same file layout as the workflow's report rules (workflow/rules/report.smk):

<out_dir>/report.html                          the page (figures embedded, so it stands alone)
<out_dir>/plots/{model}/{qset}/{kind}.png      one per `PLOT_KINDS`
<out_dir>/plots/{model}/loss_curves.png        finetune loss per cell
<out_dir>/tables/{name}.csv                    one per `TABLES`
<out_dir>/answers/{model}/{qset}.html          the answer browser
<out_dir>/plots/{model}/{qset}/transfer.png    the transfer heatmap (question sets whose questions carry `domain`)
<out_dir>/stats/{name}.csv                     the aggregate's findings tables, unless `findings` names them
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from emgrid.findings.tables import FINDINGS, findings as compute_findings
from emgrid.scores import read_scores, read_summary
from emgrid.errors import DataError
from emgrid.io import write_text
from emgrid.report.answers import write_answer_browser
from emgrid.report.page import PageInputs, write_page
from emgrid.report.answers import criterion_of
from emgrid.report.plots import PLOT_KINDS, write_loss_curves, write_plots, write_transfer_plot
from emgrid.report.tables import TABLES, DomainMeta, read_table, write_tables

__all__ = ["write_report", "plot_path", "loss_curves_path", "table_path", "answers_path"]


def plot_path(root: Path, model: str, qset: str, kind: str) -> Path:
    return Path(root) / "plots" / model / qset / f"{kind}.png"


def loss_curves_path(root: Path, model: str) -> Path:
    return Path(root) / "plots" / model / "loss_curves.png"


def table_path(root: Path, name: str) -> Path:
    return Path(root) / "tables" / f"{name}.csv"


def answers_path(root: Path, model: str, qset: str) -> Path:
    return Path(root) / "answers" / model / f"{qset}.html"


def _findings(summary_csv: str | Path, scores_csv: str | Path, out: Path) -> dict[str, Path]:
    """The findings tables for a report made outside the workflow (notebooks, tests)."""
    from emgrid.stats import BootstrapSpec

    tables = compute_findings(read_scores(scores_csv), criterion_of(read_summary(summary_csv)), BootstrapSpec())
    paths = {}
    for name in FINDINGS:
        paths[name] = out / f"{name}.csv"
        write_text(paths[name], tables[name].to_csv(index=False, lineterminator="\n"))
    return paths


def _loss_curves(out_dir: Path, finetune_metrics: Mapping[str, str | Path], domains: DomainMeta | None) -> list[Path]:
    """`finetune_metrics` keys are `model/cell`; one figure per model."""
    per_model: dict[str, dict[str, str | Path]] = {}
    for key, p in finetune_metrics.items():
        model, _, cell = str(key).rpartition("/")
        if not model:
            raise DataError(f"finetune_metrics key {key!r} is not 'model/cell'")
        per_model.setdefault(model, {})[cell] = p
    return [
        write_loss_curves(cells, loss_curves_path(out_dir, m), m, domains) for m, cells in sorted(per_model.items())
    ]


def write_report(
    summary_csv: str | Path,
    scores_csv: str | Path,
    out_dir: str | Path,
    *,
    title: str = "emgrid report",
    notes: Sequence[str] = (),
    cards: Mapping[str, str | Path] | None = None,
    config_snapshot: Any = None,
    finetune_metrics: Mapping[str, str | Path] | None = None,
    domains: DomainMeta | None = None,
    n_examples: int = 5,
    findings: Mapping[str, str | Path] | None = None,
    efficacy: str | Path | None = None,
    steering: Mapping[str, str | Path] | None = None,
) -> Path:
    """Every figure, table and answer browser, then `report.html`, into `out_dir`; returns the page's path.

    `cards` maps a label to a dataset card (linked relative to the page); `finetune_metrics` maps `model/cell` to a
    finetune.json (training table and loss curves); `domains` holds each domain's config `label` and `category`;
    `findings` maps each of `emgrid.findings.tables.FINDINGS` to the aggregate's CSV (computed here, with the default
    bootstrap and the summary's criterion, when not given); `efficacy` is the efficacy table (emgrid.efficacy),
    shown before the EM results; `steering` maps matrix/directions/cosine to the steering summary's CSVs
    (emgrid.steering.matrix), whose figures are drawn into plots/steering/."""
    out_dir = Path(out_dir)
    stats = dict(findings) if findings else _findings(summary_csv, scores_csv, out_dir / "stats")
    tables = write_tables(
        summary_csv,
        stats["trigger_effect"],
        stats["ranking"],
        {t: table_path(out_dir, t) for t in TABLES},
        finetune_metrics=finetune_metrics,
        domains=domains,
    )
    pairs = read_summary(summary_csv)[["model", "qset"]].drop_duplicates().sort_values(["model", "qset"])
    plots, browsers = [], []
    for model, qset in pairs.itertuples(index=False):
        out = {k: plot_path(out_dir, model, qset, k) for k in PLOT_KINDS}
        plots += write_plots(summary_csv, stats["ranking"], out, model, qset, domains).values()
        browsers.append(
            write_answer_browser(
                scores_csv,
                summary_csv,
                answers_path(out_dir, model, qset),
                model=model,
                qset=qset,
                title=title,
                domains=domains,
            )
        )
    transfer = read_table(stats["transfer"])
    transfer_plots = [
        write_transfer_plot(stats["transfer"], plot_path(out_dir, m, q, "transfer"), m, q, domains)
        for m, q in transfer[["model", "qset"]].drop_duplicates().itertuples(index=False)
    ]
    files = {
        "summary": [Path(summary_csv)],
        "scores": [Path(scores_csv)],
        "plots": plots,
        "answers": browsers,
        "headline": [Path(stats["headline"])],
        "ranking_stats": [Path(stats["ranking"])],
        "trigger_stats": [Path(stats["trigger_effect"])],
        "transfer_contrast": [Path(stats["transfer_contrast"])],
        "transfer_plots": transfer_plots,
        "loss_curves": _loss_curves(out_dir, finetune_metrics or {}, domains),
        **{name: [p] for name, p in tables.items()},
        "efficacy": [Path(efficacy)] if efficacy else [],
        **_steering_files(out_dir, steering),
    }
    inp = PageInputs(
        html=out_dir / "report.html",
        files=files,
        title=title,
        notes=tuple(notes),
        cards={k: Path(v) for k, v in (cards or {}).items()},
        config_snapshot=config_snapshot,
        n_examples=n_examples,
    )
    return write_page(inp)


def _steering_files(out_dir: Path, steering: Mapping[str, str | Path] | None) -> dict[str, list[Path]]:
    """The steering section's inputs: its tables and the three figures, drawn here as the steering_plots rule does."""
    if not steering:
        return {}
    from emgrid.report.steering_plots import write_steering_plots

    out = {k: out_dir / "plots" / "steering" / f"{k}.png" for k in ("matrix", "sweep", "cosine")}
    figures = write_steering_plots(steering["matrix"], steering["directions"], steering["cosine"], out)
    return {
        "steering": [Path(steering["matrix"])],
        "steering_directions": [Path(steering["directions"])],
        "steering_plots": list(figures.values()),
    }
