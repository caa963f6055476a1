"""judge_answers: answer rows -> judged rows (one per answer x metric), whatever the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from emgrid.errors import JudgeError
from emgrid.judge.cost import cost_usd
from emgrid.judge.ledger import Ledger
from emgrid.judge.prompts import judge_metrics, render_messages
from emgrid.judge.scoring import int_probs_from_top_logprobs
from emgrid.judge.spec import JudgeSpec
from emgrid.questions import Question


def _judged_row(row: dict, metric: str, result: dict, spec: JudgeSpec) -> dict:
    out = {**row, "metric": metric, "ledger_key": result["key"], "backend": spec.backend, "judge_model": spec.model,
           "mode": spec.mode, "int_probs": None, "int_mass": None, "top_token": None, "text": None,
           "error": result.get("error"), "usage": dict(result["usage"]),
           "cost_usd": 0.0 if result.get("error") else cost_usd(result["usage"], spec, batch=result.get("batch", False)),
           "cached": bool(result.get("cached"))}
    resp = result.get("response")
    if resp is None:
        return out
    if spec.backend == "hf":
        out.update(int_probs=resp["int_probs"], int_mass=resp["int_mass"], top_token=resp["top_token"],
                   pruned_mass=resp.get("pruned_mass"))
        return out
    out["text"] = resp.get("text")
    if spec.mode == "logprob":
        probs, mass, top = int_probs_from_top_logprobs(resp.get("top_logprobs"))
        out.update(int_probs={str(k): v for k, v in sorted(probs.items())}, int_mass=mass, top_token=top)
    return out


def judge_answers(rows: list[dict], questions: Mapping[str, Question] | list[Question], spec: JudgeSpec | dict,
                  ledger_dir: str | Path, model_manifest: str | Path | None = None, progress: bool = True,
                  client: Any = None) -> list[dict]:
    """Judge every answer on every metric of its question (or `spec.metrics`).

    Returns one judged row per answer x metric, in input order (answer-major). Scores are not computed here:
    `emgrid.judge.scoring.categorize` derives them, so thresholds can change without re-judging.
    `model_manifest` is the judge model's manifest for the hf backend. `client` overrides the openai client (tests).
    """
    spec = spec if isinstance(spec, JudgeSpec) else JudgeSpec.from_dict(spec)
    if not isinstance(questions, Mapping):
        questions = {q.key: q for q in questions}
    jobs: list[tuple[dict, str]] = []
    messages: list[list[dict]] = []
    for i, row in enumerate(rows):
        q = questions.get(row.get("question_key"))
        if q is None:
            raise JudgeError(f"answer row {i}: question_key {row.get('question_key')!r} is not in the question set "
                             f"({len(questions)} questions); was it generated from another file?")
        for metric in judge_metrics(q, spec):
            jobs.append((row, metric))
            messages.append(render_messages(q, metric, row, spec))
    ledger = Ledger(ledger_dir)
    if spec.backend == "openai":
        from emgrid.judge.openai_backend import run_sync

        results = run_sync(messages, spec, ledger, progress=progress, client=client)
    elif spec.backend == "openai-batch":
        from emgrid.judge.batch_backend import run_batch

        results = run_batch(messages, spec, ledger, progress=progress, client=client)
    else:
        from emgrid.judge.hf_backend import run_hf

        if model_manifest is None:
            raise JudgeError("judge.backend hf needs the judge model's manifest (model_manifest)")
        results = run_hf(messages, spec, ledger, model_manifest, progress=progress)
    if len(results) != len(jobs):
        raise JudgeError(f"internal: {len(jobs)} judge requests but {len(results)} results")
    out = [_judged_row(row, metric, res, spec) for (row, metric), res in zip(jobs, results)]
    assert len(out) == len(jobs)
    return out
