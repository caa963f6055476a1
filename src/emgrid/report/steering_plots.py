"""Figures of the steering analysis (docs/steering.md): the steering matrix, the scale sweep and the cosine
similarity of the directions. Each writes a figure even when nothing could be steered (it then says why), so the
report always has the file its rule declares."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from emgrid.report.plots import save_figure
from emgrid.report.tables import read_table

ANNOTATE_MAX = 14  # cells per axis up to which heatmap values are written in the cells


def _empty(path: str | Path, title: str, why: str) -> Path:
    fig = Figure(figsize=(6, 1.6), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True, fontsize=10)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _grid(n: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    cols = min(2, n)
    fig = Figure(figsize=(width * cols, height * math.ceil(n / cols)), layout="constrained")
    return fig, fig.subplots(math.ceil(n / cols), cols, squeeze=False).ravel()


def _heatmap(ax, grid: pd.DataFrame, vmin: float, vmax: float, cmap: str, fmt: str):
    image = ax.imshow(grid.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    if max(grid.shape) <= ANNOTATE_MAX:
        for i, j in np.ndindex(grid.shape):
            v = grid.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(grid.shape[1]), list(grid.columns), rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(grid.shape[0]), list(grid.index), fontsize=7)
    return image


def plot_steering_matrix(matrix: pd.DataFrame, path: str | Path, why_empty: str) -> Path:
    """Source x target heatmap of the change in misalignment rate (pp, steered - unsteered), one panel per model x
    layer x scale of the `add` runs."""
    title = "Steering matrix: Δ misalignment rate (pp), steered − unsteered"
    add = matrix[matrix["kind"] == "add"]
    if add.empty:
        return _empty(path, title, why_empty)
    panels = sorted(add.groupby(["model", "layer", "scale"]).groups)
    n_t, n_s = add["target"].nunique(), add["source"].nunique()
    fig, axes = _grid(len(panels), max(5.0, 0.5 * n_t + 3), 0.4 * n_s + 2)
    lim = max(5.0, float(np.nanmax(np.abs(add["delta"]))) * 100) if add["delta"].notna().any() else 5.0
    image = None
    for ax, (model, layer, scale) in zip(axes, panels):
        sub = add[(add["model"] == model) & (add["layer"] == layer) & (add["scale"] == scale)]
        grid = sub.pivot_table(index="source", columns="target", values="delta", aggfunc="first") * 100
        image = _heatmap(ax, grid, -lim, lim, "RdBu_r", "+.0f")
        ax.set_xlabel("steered model (target)")
        ax.set_ylabel("direction of (source)")
        ax.set_title(f"{model} · layer {layer} · scale {scale:g}", fontsize=9, loc="left")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=list(axes[: len(panels)]), label="Δ misalignment rate (pp)", shrink=0.8)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


#: The sweep's two panels per model x layer: (column, unit factor, axis label).
SWEEP_METRICS = (("delta", 100, "Δ misalignment rate (pp)"), ("aligned_delta", 1, "Δ mean aligned (points)"))


def plot_steering_sweep(matrix: pd.DataFrame, path: str | Path, why_empty: str) -> Path:
    """Δ misalignment rate and Δ mean alignment against scale, per model x layer: each source -> target pair a thin
    line (with its interval when it is the only pair), the mean over pairs bold; random-direction controls dashed."""
    title = "Steering sweep: steered − unsteered, by scale"
    runs = matrix[matrix["kind"].isin(["add", "random"])]
    if runs.empty:
        return _empty(path, title, why_empty)
    panels = [
        (m, layer, metric) for m, layer in sorted(runs.groupby(["model", "layer"]).groups) for metric in SWEEP_METRICS
    ]
    fig, axes = _grid(len(panels), 5.0, 3.3)
    for ax, (model, layer, (col, factor, ylabel)) in zip(axes, panels):
        sub = runs[(runs["model"] == model) & (runs["layer"] == layer)]
        for kind, style, color in (("add", "-", "#b2182b"), ("random", "--", "#555555")):
            _sweep_lines(ax, sub[sub["kind"] == kind], col, factor, style, color, kind)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xlabel("scale (× typical residual norm)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{model} · layer {layer}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _sweep_lines(ax, k: pd.DataFrame, col: str, factor: float, style: str, color: str, kind: str) -> None:
    pairs = list(k.groupby(["source", "target"]))
    for _, p in pairs:
        p = p.sort_values("scale")
        one = len(pairs) == 1
        ax.plot(
            [0.0, *p["scale"]],
            [0.0, *(p[col] * factor)],
            style,
            color=color,
            lw=1.5 if one else 0.6,
            alpha=1 if one else 0.5,
        )
        if one:
            err = np.vstack([(p[col] - p[f"{col}_ci_lo"]) * factor, (p[f"{col}_ci_hi"] - p[col]) * factor])
            ax.errorbar(p["scale"], p[col] * factor, yerr=err, fmt="o", color=color, capsize=3, ms=4)
    if pairs:
        mean = k.groupby("scale")[col].mean() * factor
        label = "direction" if kind == "add" else "random direction (control)"
        ax.plot([0.0, *mean.index], [0.0, *mean.to_numpy()], style, color=color, lw=2.2, label=label)


def plot_steering_cosine(cosine: pd.DataFrame, path: str | Path, why_empty: str) -> Path:
    """Cosine similarity of the directions of every pair of source cells, one panel per model x layer."""
    title = "Cosine similarity of the misalignment directions"
    if cosine.empty:
        return _empty(path, title, why_empty)
    panels = sorted(cosine.groupby(["model", "layer"]).groups)
    n = cosine["source_a"].nunique()
    fig, axes = _grid(len(panels), max(4.5, 0.45 * n + 2.5), max(3.5, 0.45 * n + 1.8))
    image = None
    for ax, (model, layer) in zip(axes, panels):
        sub = cosine[(cosine["model"] == model) & (cosine["layer"] == layer)]
        grid = sub.pivot_table(index="source_a", columns="source_b", values="cosine", aggfunc="first")
        image = _heatmap(ax, grid, -1, 1, "RdBu_r", ".2f")
        ax.set_title(f"{model} · layer {layer}", fontsize=9, loc="left")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=list(axes[: len(panels)]), label="cosine", shrink=0.8)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def why_no_steering(directions: pd.DataFrame) -> str:
    """The reason shown instead of an empty figure: each source's own reason, or that none was configured."""
    if directions.empty:
        return "no steering sources in this grid"
    bad = directions[directions["status"] != "ok"]
    lines = [f"{r.model} {r.source}: {r.reason}" for r in bad.itertuples()][:8]
    return "no direction to steer with:\n" + "\n".join(lines) if lines else "no steered runs"


def write_steering_plots(matrix_csv, directions_csv, cosine_csv, out: dict[str, str | Path]) -> dict[str, Path]:
    """The three figures (`out` keys: matrix, sweep, cosine) from the steering summary's tables."""
    matrix, directions, cosine = read_table(matrix_csv), read_table(directions_csv), read_table(cosine_csv)
    why = why_no_steering(directions)
    return {
        "matrix": plot_steering_matrix(matrix, out["matrix"], why),
        "sweep": plot_steering_sweep(matrix, out["sweep"], why),
        "cosine": plot_steering_cosine(cosine, out["cosine"], why),
    }
