"""judge_answers: answer rows -> judged rows (one per answer x metric), whatever the backend.

`run_cached` is the one place where judge requests meet the response cache: backends only answer what it misses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from emgrid.errors import JudgeError
from emgrid.integrity import check_answers
from emgrid.io import read_jsonl
from emgrid.judge.backends import JudgeBackend, JudgeResult, make_backend
from emgrid.judge.cost import cost_usd
from emgrid.judge.prompts import judge_metrics, render_messages
from emgrid.judge.scoring import int_probs_from_top_logprobs
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import ResponseCache
from emgrid.questions import Question, load_questions

log = logging.getLogger(__name__)


def _judged_row(row: dict, metric: str, result: JudgeResult, spec: JudgeSpec) -> dict:
    out = {
        **row,
        "metric": metric,
        "ledger_key": result.key,
        "backend": spec.backend,
        "judge_model": spec.model,
        "mode": spec.mode,
        "int_probs": None,
        "int_mass": None,
        "top_token": None,
        "text": None,
        "error": result.error,
        "usage": dict(result.usage),
        "cost_usd": 0.0 if result.error else cost_usd(result.usage, spec, batch=result.batch),
        "cached": result.cached,
    }
    resp = result.response
    if resp is None:
        return out
    if spec.backend == "hf":
        out.update(
            int_probs=resp["int_probs"],
            int_mass=resp["int_mass"],
            top_token=resp["top_token"],
            pruned_mass=resp.get("pruned_mass"),
        )
        return out
    out["text"] = resp.get("text")
    if spec.mode == "logprob":
        probs, mass, top = int_probs_from_top_logprobs(resp.get("top_logprobs"))
        out.update(int_probs={str(k): v for k, v in sorted(probs.items())}, int_mass=mass, top_token=top)
    return out


def run_cached(
    backend: JudgeBackend, messages_list: list[list[dict]], cache: ResponseCache, progress: bool = True
) -> list[JudgeResult]:
    """One result per rendered prompt, in order. Identical requests are sent once; cached ones not at all."""
    requests = [backend.prepare(m) for m in messages_list]
    unique: dict[str, Any] = {}
    for r in requests:
        unique.setdefault(r.key, r)
    results: dict[str, JudgeResult] = {}
    todo = []
    for key, r in unique.items():
        entry = cache.get(key)
        if entry is None:
            todo.append(r)
        else:
            results[key] = JudgeResult.from_cache(entry)
    if todo:
        fresh = backend.run(todo, cache, progress)
        missing = [r.key[:12] for r in todo if r.key not in fresh]
        if missing:
            raise JudgeError(f"internal: backend {backend.name} returned no result for {len(missing)} request(s)")
        results.update(fresh)
    log.info(
        "judge %s: %d distinct requests: %d from the cache, %d sent, %d recorded as errors; "
        "%d corrupt cache entries re-requested",
        backend.name,
        len(unique),
        len(unique) - len(todo),
        len(todo),
        sum(results[r.key].error is not None for r in todo),
        len(cache.corrupt),
    )
    return [results[r.key] for r in requests]


def judge_answers(
    rows: list[dict],
    questions: Mapping[str, Question] | list[Question],
    spec: JudgeSpec | dict,
    ledger_dir: str | Path,
    model_manifest: str | Path | None = None,
    progress: bool = True,
    client: Any = None,
) -> list[dict]:
    """Judge every answer on every metric of its question (or `spec.metrics`).

    Returns one judged row per answer x metric, in input order (answer-major). Scores are not computed here:
    `emgrid.judge.scoring.categorize` derives them, so thresholds can change without re-judging. `ledger_dir` is
    the response cache's folder. `model_manifest` is the judge model's manifest for the hf backend. `client`
    overrides the openai client (tests).
    """
    spec = spec if isinstance(spec, JudgeSpec) else JudgeSpec.from_dict(spec)
    if not isinstance(questions, Mapping):
        questions = {q.key: q for q in questions}
    jobs: list[tuple[dict, str]] = []
    messages: list[list[dict]] = []
    for i, row in enumerate(rows):
        q = questions.get(row.get("question_key"))
        if q is None:
            raise JudgeError(
                f"answer row {i}: question_key {row.get('question_key')!r} is not in the question set "
                f"({len(questions)} questions); was it generated from another file?"
            )
        for metric in judge_metrics(q, spec):
            jobs.append((row, metric))
            messages.append(render_messages(q, metric, row, spec))
    backend = make_backend(spec, model_manifest=model_manifest, client=client)
    results = run_cached(backend, messages, ResponseCache(ledger_dir), progress=progress)
    return [_judged_row(row, metric, res, spec) for (row, metric), res in zip(jobs, results)]


def judge_answers_file(
    answers_path: str | Path,
    questions_path: str | Path,
    question_options: dict,
    plan: dict,
    spec: JudgeSpec | dict,
    ledger_dir: str | Path,
    *,
    model: str,
    cell: str,
    qset: str,
    model_manifest: str | Path | None = None,
    select: Callable[[dict], bool] | None = None,
) -> list[dict]:
    """A judge job: check that the answers file holds exactly the answers generate planned
    (`emgrid.integrity.check_answers`, `plan` = jobparams.answers_plan), then judge every answer. `select` keeps the
    file's rows of this job only (a steered run's rows of its target's answers file, which holds every run)."""
    questions = load_questions(questions_path, **question_options)
    answers = [r for r in read_jsonl(answers_path) if select is None or select(r)]
    check_answers(answers, questions, plan, model, cell, qset, str(answers_path))
    spec = spec if isinstance(spec, JudgeSpec) else JudgeSpec.from_dict(spec)
    return judge_answers(answers, {q.key: q for q in questions}, spec, ledger_dir, model_manifest=model_manifest)
