"""The results/ layout, written once: every path a rule writes or reads under results/, as a Snakemake pattern
(`{model}`, `{cell}`, ... wildcards) and, where the library or an input function needs one file, as a function of
the cell it belongs to.

Why one place: the rules' outputs, their input functions, the start-up checks (emgrid.missing_results)
and the library must agree on every path; a path spelled out in two places drifts apart the day one of them moves.
Patterns are plain strings, so a rule's `output:` uses them as they are and `expand` or `str.format` fills them.
"""

from __future__ import annotations

from pathlib import Path

from emgrid.grid import Cell

RESULTS = "results"
MANIFEST = "results/models/{model}/manifest.json"
DATASETS = "results/datasets"
DATASET_DIR = f"{DATASETS}/{{domain}}/{{variant}}-s{{seed}}"
TRAIN = f"{DATASET_DIR}/train.jsonl"
HELDOUT = f"{DATASET_DIR}/heldout.jsonl"
CARD = f"{DATASET_DIR}/card.json"
CELL_DIR = "results/cells/{model}/{cell}"
ADAPTER = f"{CELL_DIR}/adapter"
FINETUNE_METRICS = f"{CELL_DIR}/finetune.json"
OPENAI_EVENTS = f"{CELL_DIR}/openai_events.jsonl"
ANSWERS = f"{CELL_DIR}/answers/{{qset}}.jsonl"
JUDGED = f"{CELL_DIR}/judged/{{qset}}.jsonl"
EFFICACY_DIR = f"{CELL_DIR}/efficacy/{{domain}}"
EFFICACY_ANSWERS = f"{EFFICACY_DIR}/answers.jsonl"
EFFICACY_JUDGED = f"{EFFICACY_DIR}/judged.jsonl"
STEERING_DIR = f"{CELL_DIR}/steering"
DIRECTION_JSON = f"{STEERING_DIR}/direction.json"
DIRECTION_NPZ = f"{STEERING_DIR}/direction.npz"
STEERING_ANSWERS = f"{STEERING_DIR}/answers/{{qset}}.jsonl"
STEERING_RUNS = f"{STEERING_DIR}/answers/{{qset}}.runs.json"
STEERING_JUDGED = f"{STEERING_DIR}/{{steer}}/judged/{{qset}}.jsonl"

SUMMARY_DIR = "results/summary"
SCORES_CSV = f"{SUMMARY_DIR}/scores.csv"
SUMMARY_CSV = f"{SUMMARY_DIR}/summary.csv"
EFFICACY_CSV = f"{SUMMARY_DIR}/efficacy.csv"
STEERING_SUMMARY = {
    "matrix": f"{SUMMARY_DIR}/steering.csv",
    "directions": f"{SUMMARY_DIR}/steering_directions.csv",
    "cosine": f"{SUMMARY_DIR}/steering_cosine.csv",
}

MIA_FEATURES = "results/analysis/mia/{model}/{domain}-s{seed}.csv"
MIA_FEATURES_SUMMARY = "results/analysis/mia/{model}/{domain}-s{seed}.summary.csv"
MIA_OUTPUTS = ("results/analysis/mia/domains.csv", "results/analysis/mia/tests.csv")
DIVERSITY_SCORES = "results/analysis/diversity/{domain}-s{seed}.json"
DIVERSITY_OUTPUTS = (
    "results/analysis/diversity/scores.csv",
    "results/analysis/diversity/domains.csv",
    "results/analysis/diversity/tests.csv",
)

#: What shows the summary's numbers as a finished result: the report page (the rest of results/report/ are declared
#: outputs of rules downstream of the summary) and the archive `snakemake --report results/report.zip` packs.
LOGS = "results/logs"
REPORT_PAGE = "results/report/report.html"
REPORT_ZIP = "results/report.zip"


def cell_path(pattern: str, cell: Cell, **wildcards) -> str:
    """`pattern` filled for one cell (its model and id) and the other wildcards given."""
    return pattern.format(model=cell.model, cell=cell.id, **wildcards)


def dataset_path(pattern: str, domain: str, variant: str, seed: int) -> str:
    return pattern.format(domain=domain, variant=variant, seed=seed)


def answers_path(cell: Cell, qset: str) -> str:
    return cell_path(ANSWERS, cell, qset=qset)


def judged_path(cell: Cell, qset: str) -> str:
    return cell_path(JUDGED, cell, qset=qset)


def drop_report(paths: tuple[str, ...] = (REPORT_PAGE, REPORT_ZIP)) -> list[str]:
    """Remove the report page and the report archive; the paths removed.

    Why: a report must never outlive the summary it shows. The aggregate job calls this before anything else (the
    summary it replaces is already gone then), so a kill or a failure leaves no old numbers behind; the Snakefile
    calls it after a failed run and at start-up when summary.csv is missing. Only the page, not the figures: other
    jobs of the same run may still read them, some derive from other results (steering, analyses: a run of those
    targets alone has no summary), and every one that shows the summary reruns after a new one.
    """
    removed = []
    for path in map(Path, paths):
        if path.exists():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(str(path))
    return removed
