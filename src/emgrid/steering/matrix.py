"""The steering matrix: how much a source cell's direction changes a target's misalignment rate, and how alike the
directions of different cells are.

Each steered run is compared with the unsteered run of the same target on the same questions: the effect is the
paired difference of misalignment rates within questions (`emgrid.stats.paired.paired_effect`: t interval over
questions of the question-level differences, sign-flip p-value), the same statistics as the trigger effect.
Misalignment is the aggregate's criterion (`analysis`), so steered and ordinary answers are counted alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from emgrid.scores import analysis_specs, score_answers
from emgrid.findings.clustered import with_indicators
from emgrid.io import read_jsonl, write_text
from emgrid.stats import layout
from emgrid.stats.paired import paired_effect
from emgrid.steering.directions import read_direction
from emgrid.steering.steer import UNSTEERED

MATRIX_COLS = [
    "model",
    "qset",
    "target",
    "source",
    "layer",
    "kind",
    "scale",
    "n_answers",
    "misalignment_rate",
    "baseline_misalignment_rate",
    "delta",
    "delta_ci_lo",
    "delta_ci_hi",
    "p_value",
    "mean_aligned",
    "baseline_mean_aligned",
    "aligned_delta",
    "aligned_delta_ci_lo",
    "aligned_delta_ci_hi",
    "aligned_p_value",
]
STEER_COLS = ("kind", "source", "layer", "scale")
DIRECTION_COLS = ["model", "source", "status", "reason"]


def steering_scores(judged_files: Iterable[Sequence[dict]], criterion, min_mass: float) -> pd.DataFrame:
    """One row per steered answer: the aggregate's scores and `misaligned` indicator plus the run's steer fields.
    Files of runs without a direction (no rows) are skipped."""
    frames = []
    for rows in judged_files:
        if not rows:
            continue
        scores = with_indicators(score_answers(rows, min_mass), criterion)
        steer = rows[0]["steer"]
        frames.append(scores.assign(**{k: steer[k] for k in STEER_COLS}))
    if not frames:
        return pd.DataFrame(columns=["model", "cell", "qset", "question_key", "misaligned", *STEER_COLS])
    return pd.concat(frames, ignore_index=True)


#: Per-answer columns compared between steered and unsteered answers: (scores column, output stem).
COMPARED = (("misaligned", "misalignment_rate"), ("aligned", "mean_aligned"))


def steering_table(scores: pd.DataFrame, spec) -> pd.DataFrame:
    """Per model x qset x target x steered run: its misalignment rate and mean alignment, the unsteered values, and
    the paired differences with clustered intervals and p-values (`spec`: the analysis' BootstrapSpec)."""
    out = []
    for (model, qset, target), g in scores.groupby(["model", "qset", "cell"], sort=True):
        base = g[g["kind"] == UNSTEERED]
        for run, s in g[g["kind"] != UNSTEERED].groupby(["source", "layer", "kind", "scale"], sort=True, dropna=False):
            source, layer, kind, scale = run
            rec = {
                "model": model,
                "qset": qset,
                "target": target,
                "source": source,
                "layer": int(layer),
                "kind": kind,
                "scale": float(scale),
                "n_answers": len(s),
            }
            for col, stem in COMPARED:
                rec.update(_paired(s, base, col, stem, spec.rng("steering", col, model, qset, target, *run), spec))
            out.append(rec)
    return pd.DataFrame(out, columns=MATRIX_COLS)


def _paired(steered: pd.DataFrame, base: pd.DataFrame, col: str, stem: str, rng, spec) -> dict:
    """Steered and unsteered means of `col` and their difference paired within questions (emgrid.stats)."""
    both = pd.concat([steered, base], ignore_index=True)
    values = both[col].to_numpy(dtype=float)
    lay = layout(both["cell"].to_numpy(), both["question_key"].to_numpy())
    treated = np.arange(len(both)) < len(steered)
    eff = paired_effect(
        values, treated, lay, rng, resamples=spec.resamples, permutations=spec.permutations, level=spec.level
    )
    prefix = "" if col == "misaligned" else "aligned_"
    with np.errstate(invalid="ignore"):
        return {
            stem: float(np.nanmean(values[treated])) if treated.any() else np.nan,
            f"baseline_{stem}": float(np.nanmean(values[~treated])) if (~treated).any() else np.nan,
            f"{prefix}delta": eff.estimate,
            f"{prefix}delta_ci_lo": eff.ci_lo,
            f"{prefix}delta_ci_hi": eff.ci_hi,
            f"{prefix}p_value": eff.p_value,
        }


def cosine_table(directions: dict[tuple[str, str], object], layers: Sequence[int]) -> pd.DataFrame:
    """Cosine similarity of every pair of cells' directions (same model) at each layer: do domains converge on one
    misalignment direction? Cells without a direction are left out."""
    out = []
    ok = {k: d for k, d in directions.items() if d.ok}
    for model in sorted({m for m, _ in ok}):
        cells = sorted(c for m, c in ok if m == model)
        for layer in layers:
            units = {c: ok[(model, c)].unit(layer) for c in cells}
            for a in cells:
                for b in cells:
                    out.append(
                        {
                            "model": model,
                            "layer": layer,
                            "source_a": a,
                            "source_b": b,
                            "cosine": float(units[a] @ units[b]),
                        }
                    )
    return pd.DataFrame(out, columns=["model", "layer", "source_a", "source_b", "cosine"])


def directions_table(directions: dict[tuple[str, str], object], layers: Sequence[int]) -> pd.DataFrame:
    """Per source cell: whether it has a direction (or why not), the answer counts, and at each steered layer the
    direction's norm and the typical residual norm (the unit of the scales)."""
    out = []
    for (model, cell), d in sorted(directions.items()):
        counts = d.meta.get("counts", {})
        rec = {"model": model, "source": cell, "status": d.meta.get("status"), "reason": d.meta.get("reason")}
        rec.update({f"n_{k}": v for k, v in counts.items()})
        for layer in layers:
            ok = d.ok and layer < d.directions.shape[0]
            rec[f"norm_L{layer}"] = float(np.linalg.norm(d.directions[layer])) if ok else np.nan
            rec[f"typical_norm_L{layer}"] = float(d.typical_norm[layer]) if ok else np.nan
        out.append(rec)
    return pd.DataFrame(out, columns=list(dict.fromkeys([*DIRECTION_COLS, *(k for r in out for k in r)])))


def summarize_files(
    judged_paths: Sequence[str | Path],
    direction_paths: Sequence[tuple[str | Path, str | Path]],
    out: dict[str, str | Path],
    analysis: dict,
    layers: Sequence[int],
) -> dict[str, pd.DataFrame]:
    """Write `out["matrix"]`, `out["directions"]` and `out["cosine"]` (CSV) from the steering judged files and the
    (json, npz) direction files; `analysis` = the config's `analysis` keys it reads (criterion, min_mass, bootstrap:
    emgrid.steering.grid.SUMMARY_ANALYSIS_KEYS; the rest take their defaults and do not change these tables)."""
    criterion, min_mass, boot, _ = analysis_specs(analysis)
    scores = steering_scores((read_jsonl(p) for p in judged_paths), criterion, min_mass)
    dirs = {}
    for js, npz in direction_paths:
        d = read_direction(js, npz)
        dirs[(d.meta["model"], d.meta["cell"])] = d
    tables = {
        "matrix": steering_table(scores, boot),
        "directions": directions_table(dirs, layers),
        "cosine": cosine_table(dirs, layers),
    }
    for name, df in tables.items():
        write_text(out[name], df.to_csv(index=False))
    return tables
