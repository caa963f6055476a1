"""The aggregate step: judged JSONL files in, scores.csv, summary.csv and the findings tables out.

Scores are derived from the stored judge distributions (emgrid.scores), so a change of the probability-mass cut-off
or of the misalignment criterion only re-runs this step, never the judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import pandas as pd

from tqdm import tqdm

from emgrid.errors import DataError
from emgrid.findings.clustered import summary_cci
from emgrid.findings.tables import FINDINGS, findings
from emgrid.integrity import ANSWER_KEY, check_judged
from emgrid.io import iter_jsonl, read_jsonl, write_text
from emgrid.judge.scoring import DEFAULT_MIN_MASS
from emgrid.scores import GROUP_KEY, Criterion, score_answers, summarize, to_csv
from emgrid.stats import BootstrapSpec
from emgrid.stats.adjust import DEFAULT_ALPHA

__all__ = ["aggregate_files"]


def aggregate_files(
    judged_paths: Sequence[str | Path],
    out_scores_csv: str | Path,
    out_summary_csv: str | Path,
    criterion: Criterion | None = None,
    min_mass: float = DEFAULT_MIN_MASS,
    *,
    categorize: Callable[[dict, float], tuple[float | None, str]] | None = None,
    bootstrap: BootstrapSpec | None = None,
    alpha: float = DEFAULT_ALPHA,
    findings_csv: dict[str, str | Path] | None = None,
    answers_paths: Sequence[str | Path] | None = None,
    exclude_cells: Iterable[tuple[str, str]] = (),
) -> None:
    """Read judged JSONL files, write scores.csv (one row per answer), summary.csv (Wilson and clustered intervals)
    and, for each FINDINGS name in `findings_csv`, that table, atomically.

    With `answers_paths` (one per judged file, same order), first checks that every answer generated has its judged
    rows (emgrid.integrity.check_judged). Checks that every answer found in the inputs appears exactly once in
    scores.csv (nothing silently dropped). `exclude_cells` ((model, cell) pairs) are then left out of both files:
    with `analysis.drop_untaken_cells`, the cells whose finetune did not take (emgrid.efficacy), so ranking and
    trigger effect use only cells that learned.
    """
    if not judged_paths:
        raise DataError("aggregate_files: no judged files given")
    if answers_paths is not None:
        if len(answers_paths) != len(judged_paths):
            raise DataError(f"aggregate_files: {len(judged_paths)} judged files but {len(answers_paths)} answers files")
        for judged, answers in zip(judged_paths, answers_paths):
            check_judged(read_jsonl(judged), read_jsonl(answers), str(judged))
    scores = _read_scores(judged_paths, min_mass, categorize)
    criterion = criterion or Criterion()
    bootstrap = bootstrap or BootstrapSpec()
    scores = _exclude(scores, set(exclude_cells))
    summary = summarize(scores, criterion)
    if not summary.empty:
        cci = summary_cci(scores, criterion, bootstrap, GROUP_KEY)
        summary = summary.merge(cci, on=GROUP_KEY, how="left", validate="one_to_one")
    tables = findings(scores, criterion, bootstrap, alpha) if findings_csv else {}
    unknown = set(findings_csv or ()) - set(FINDINGS)
    if unknown:
        raise DataError(f"aggregate_files: unknown findings table(s) {sorted(unknown)}; known: {FINDINGS}")
    write_text(out_scores_csv, to_csv(scores))
    write_text(out_summary_csv, to_csv(summary))
    for name, path in (findings_csv or {}).items():
        write_text(path, to_csv(tables[name]))


def _read_scores(
    judged_paths: Sequence[str | Path],
    min_mass: float,
    categorize: Callable[[dict, float], tuple[float | None, str]] | None,
) -> pd.DataFrame:
    """Score every judged row of the files, checking that each answer in them got exactly one score row."""
    answer_keys: set[tuple] = set()

    def counted() -> Iterator[dict]:
        for p in tqdm(judged_paths, desc="aggregate", unit="file", disable=len(judged_paths) < 2):
            for lineno, obj in iter_jsonl(p):
                obj["_source"] = f"{p}:{lineno}"
                if all(c in obj for c in ANSWER_KEY):
                    answer_keys.add(tuple(obj[c] for c in ANSWER_KEY))
                yield obj

    scores = score_answers(counted(), min_mass, categorize=categorize)
    if scores.empty:
        raise DataError(f"aggregate_files: no judged rows in {[str(p) for p in judged_paths]}")
    if len(scores) != len(answer_keys):
        raise DataError(f"aggregate_files: {len(answer_keys)} answers in the judged files but {len(scores)} score rows")
    return scores


def _exclude(scores: pd.DataFrame, exclude: set[tuple[str, str]]) -> pd.DataFrame:
    """Leave out the (model, cell) pairs in `exclude`; excluding every cell is a DataError."""
    if not exclude:
        return scores
    keep = [(m, c) not in exclude for m, c in zip(scores["model"], scores["cell"])]
    scores = scores[keep].reset_index(drop=True)
    if scores.empty:
        raise DataError(f"aggregate_files: every cell was excluded ({sorted(exclude)}): no finetune took")
    return scores
