"""Power before compute, for `emgrid plan`: per model x question set, the minimum detectable trigger effect of the
configured design (seeds x questions x answers), and the answers or questions that reach a target.

The designs are read from the effective config inside the plan's dry run (`designs`), the variance components from
judged answers already on disk (`results/summary/scores.csv`, per model x question set) when there are any, else the
stated defaults of `emgrid.stats.power` — the table says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from emgrid.grid import Cell, domain_variants, question_set
from emgrid.jobparams import count_answers, generate_params, present_questions
from emgrid.layout import SCORES_CSV
from emgrid.scores import analysis_specs, read_scores
from emgrid.stats import BootstrapSpec
from emgrid.stats.adjust import DEFAULT_ALPHA
from emgrid.stats.paired import sign_flip_floor
from emgrid.stats.power import (
    DEFAULT_COMPONENTS,
    MAX_SEARCH,
    VarianceComponents,
    answers_for,
    components_from_scores,
    mde,
    questions_for,
)

METRICS = ("misaligned", "aligned")  # misalignment rate (reported in percentage points), mean alignment (points)
UNITS = {"misaligned": 100.0, "aligned": 1.0}


@dataclass(frozen=True)
class Design:
    """One model x question set as configured: trained models (seeds) per domain, questions, answers per
    (seed, question) pair and condition (paraphrases x samples, averaged over questions), and the domains whose
    trigger tests one correction spans."""

    model: str
    qset: str
    seeds: int
    questions: int
    answers: int
    domains: int = 1


def _first_cell(config: dict, model: str) -> Cell:
    """A finetuned cell of `model` (its generate settings stand for the model's: answers per question), else base."""
    for domain in config["domains"]:
        for variant in domain_variants(config, domain):
            return Cell(model, domain, variant, int(config["seeds"][0]))
    return Cell(model)


def designs(config: dict) -> list[dict]:
    """The designs of the config's models x question sets, as plain dicts (they travel in the plan's dry-run dump).
    A question set whose file is missing counts `planned_questions` (one paraphrase each), or has no design."""
    out = []
    for model in config["models"]:
        cell = _first_cell(config, model)
        for qset in config["question_sets"]:
            n_q = len(present_questions(config, qset))
            if n_q:
                per_q = count_answers(config, cell, qset, conditions=1) / n_q
            else:
                n_q = question_set(config, qset).get("planned_questions") or 0
                per_q = generate_params(config, cell, qset)["spec"].get("samples_per_paraphrase") or 1
            if n_q:
                design = Design(model, qset, len(config["seeds"]), n_q, max(1, round(per_q)), len(config["domains"]))
                out.append(asdict(design))
    return out


def measured_components(scores_csv: str | Path, analysis: dict) -> dict[tuple[str, str, str], VarianceComponents]:
    """(model, qset, metric) -> components measured on the judged answers of finetuned cells in `scores_csv`."""
    path = Path(scores_csv)
    if not path.is_file():
        return {}
    scores = read_scores(path)
    scores = scores[scores["cell"] != "base"]
    criterion = analysis_specs(analysis)[0]
    ind = pd.concat([scores, criterion.indicators(scores)], axis=1)
    out = {}
    for (model, qset), g in ind.groupby(["model", "qset"], sort=True):
        for metric in METRICS:
            vc = components_from_scores(g, metric, metric)
            if vc is not None:
                out[(model, qset, metric)] = vc
    return out


def power_rows(
    design_dicts: list[dict],
    measured: dict,
    target: float | None = None,
    target_metric: str = "misaligned",
    alpha: float = DEFAULT_ALPHA,
    permutations: int = BootstrapSpec().permutations,
) -> list[dict]:
    """One row per design and metric: the MDE (in percentage points for misalignment, points for alignment), the
    components' source, with a `target` (same units) the answers per pair, or else the questions, that reach it, and
    the design's `floor_note` where its question count keeps every domain from Holm significance."""
    rows = []
    for d in design_dicts:
        note = floor_note(d, alpha, permutations)
        for metric in METRICS:
            vc = measured.get((d["model"], d["qset"], metric), DEFAULT_COMPONENTS[metric])
            unit = UNITS[metric]
            row = {
                **d,
                "metric": metric,
                "mde": mde(vc, d["questions"], d["answers"], d["seeds"]) * unit,
                "source": vc.source,
            }
            if target is not None and metric == target_metric:
                row["target"] = target
                row["answers_needed"] = answers_for(vc, target / unit, d["questions"], d["seeds"])
                row["questions_needed"] = questions_for(vc, target / unit, d["seeds"], d["answers"])
            rows.append({**row, "floor_note": note if metric == METRICS[-1] else None})
    return rows


def floor_note(design: dict, alpha: float, permutations: int) -> str | None:
    """Where the trigger test's smallest possible p-value (`sign_flip_floor`, Q questions) is above Holm's first
    threshold across the design's domains, a sentence saying so and how many questions would do; else None. Such a
    grid reports 0 significant drops whatever the models do, so the plan says it before anything runs."""
    domains = max(int(design.get("domains", 1)), 1)
    floor, first = sign_flip_floor(design["questions"], permutations), alpha / domains
    if floor <= first:
        return None
    need = next((q for q in range(2, 64) if sign_flip_floor(q, permutations) <= first), None)
    text = (
        f"{design['questions']} questions: the trigger test's smallest p-value is {floor:.2g}, above Holm's first "
        f"threshold across {domains} domain(s) ({first:.2g}), so no domain's drop can be Holm-significant"
    )
    if floor > alpha:
        text += f" (nor significant at alpha {alpha:g})"
    if need is None:
        return text + "; more sign flips (analysis.bootstrap.permutations) are needed"
    return text + f"; {need} questions or more can be"


def power_for_plan(
    power: dict, workdir: str | Path = ".", target: float | None = None, target_metric: str = "misaligned"
) -> list[dict]:
    """The plan's power rows from the dry run's `power` payload ({designs, analysis}), with variance components
    measured on `workdir`'s results/summary/scores.csv when it exists."""
    if not power.get("designs"):
        return []
    analysis = power.get("analysis") or {}
    measured = measured_components(Path(workdir) / SCORES_CSV, analysis)
    _, _, boot, alpha = analysis_specs(analysis)
    return power_rows(power["designs"], measured, target, target_metric, alpha, boot.permutations)


def _needed(row: dict) -> str:
    if "target" not in row:
        return ""
    unit = "pp" if row["metric"] == "misaligned" else "points"
    if row["answers_needed"] is not None:
        return f"  target {row['target']:g} {unit}: {row['answers_needed']} answers per question and condition"
    if row["questions_needed"] is not None:
        return (
            f"  target {row['target']:g} {unit}: {row['questions_needed']} questions (no number of answers reaches it)"
        )
    return f"  target {row['target']:g} {unit}: not reachable below {MAX_SEARCH:,} answers or questions"


def format_power(rows: list[dict]) -> list[str]:
    """The plan's power section: one line per model x question set x metric."""
    if not rows:
        return []
    lines = [
        "minimum detectable trigger effect per cell (alpha 0.05 two-sided, power 0.8; emgrid.stats.power):",
    ]
    for r in rows:
        design = f"{r['seeds']} seed(s) x {r['questions']} questions x {r['answers']} answers"
        what = (
            f"misalignment {r['mde']:.1f} percentage points"
            if r["metric"] == "misaligned"
            else f"alignment {r['mde']:.1f} points"
        )
        lines.append(f"  {r['model']} / {r['qset']} ({design}): {what} [variance: {r['source']}]{_needed(r)}")
        if r.get("floor_note"):
            lines.append(f"  note: {r['model']} / {r['qset']}: {r['floor_note']}")
    return lines
