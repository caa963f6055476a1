"""Checks between stages: each stage verifies it received exactly the rows the stage before it was meant to write.

A file one valid row short (a crash between writes on a file system without atomic rename, a hand edit, a bug) would
otherwise be judged and aggregated without a word, and a rate computed over 4 answers instead of 5.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

from emgrid.errors import DataError
from emgrid.generation.plan import GenerateSpec, plan_prompts

# What identifies one answer across answers, judged rows and scores.csv.
ANSWER_KEY = ("model", "cell", "qset", "question_key", "condition", "sample", "paraphrase_index")


def answer_key(row: dict, where: str = "") -> tuple:
    try:
        return tuple(row[c] for c in ANSWER_KEY)
    except KeyError as e:
        raise DataError(f"{where}: row lacks the answer field {e.args[0]!r} (has {sorted(row)})") from None


def _first(keys: Counter) -> str:
    key = sorted(keys, key=repr)[0]
    return ", ".join(f"{c}={v!r}" for c, v in zip(ANSWER_KEY, key) if c not in ("model", "qset"))


def _compare(found: Counter, planned: Counter, where: str, what: str) -> None:
    missing, unexpected = planned - found, found - planned
    if not missing and not unexpected:
        return
    parts = [f"{sum(found.values())} {what}, {sum(planned.values())} planned"]
    if missing:
        parts.append(f"{sum(missing.values())} missing (first: {_first(missing)})")
    if unexpected:
        parts.append(f"{sum(unexpected.values())} unexpected or repeated (first: {_first(unexpected)})")
    raise DataError(f"{where}: " + "; ".join(parts) + " — rerun the stage that writes it (delete the file)")


def planned_answer_keys(
    questions: Iterable[Any],
    samples_per_paraphrase: int | None,
    conditions: Sequence[str],
    model: str,
    cell: str,
    qset: str,
) -> list[tuple]:
    """The answer keys a generate job writes, from the same expansion generate uses (emgrid.generation.plan)."""
    spec = GenerateSpec(samples_per_paraphrase=samples_per_paraphrase)
    items = plan_prompts(questions, spec, {c: "" for c in conditions}, model, cell, qset)
    return [answer_key(it.row) for it in items]


def check_answers(
    rows: Sequence[dict], questions: Iterable[Any], plan: dict, model: str, cell: str, qset: str, where: str
) -> None:
    """The answers file holds exactly the answers generate planned: none missing, none extra, none twice.

    `plan` = {"conditions": [...], "samples_per_paraphrase": int|None} (emgrid.jobparams.answers_plan).
    """
    planned = planned_answer_keys(questions, plan["samples_per_paraphrase"], plan["conditions"], model, cell, qset)
    found = Counter(answer_key(r, f"{where}:{i}") for i, r in enumerate(rows, 1))
    _compare(found, Counter(planned), where, "answers in the file")


def check_judged(judged: Sequence[dict], answers: Sequence[dict], where: str) -> None:
    """Every answer has its judged rows: one per metric its question is judged on, and nothing else."""
    metrics: dict[tuple, list[str]] = defaultdict(list)
    for i, r in enumerate(judged, 1):
        metrics[answer_key(r, f"{where}:{i}")].append(str(r.get("metric")))
    _compare(Counter(metrics.keys()), Counter(answer_key(a, where) for a in answers), where, "answers judged")
    per_question: dict[Any, set[str]] = defaultdict(set)
    for key, ms in metrics.items():
        per_question[key[3]].update(ms)
    for key, ms in metrics.items():
        if sorted(ms) != sorted(per_question[key[3]]):
            raise DataError(
                f"{where}: answer ({_first(Counter([key]))}) has judged rows for metrics {sorted(ms)}, "
                f"other answers of its question for {sorted(per_question[key[3]])}"
            )
