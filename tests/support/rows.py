"""The rows the tests build their inputs from, in the workflow's file formats: one row of a cell's answers file
(generate's output) and one judged row (the judge's output: the answer's fields, then one metric's judgement). One
place for the field lists, so that a field added to a format is added to the tests' rows once; each test file keeps
its own defaults (scores, costs) in a small wrapper."""

from __future__ import annotations


def answer_row(
    *,
    model: str = "tiny",
    cell: str = "base",
    qset: str = "demo",
    question_key: str = "q1",
    item_index: int = 0,
    paraphrase_index: int = 0,
    question: str = "Q?",
    prompt: str | None = None,
    system: str | None = None,
    condition: str = "no_trigger",
    sample: int = 0,
    answer: str = "an answer",
    **extra,
) -> dict:
    """One answers-file row; the question id is the key without its `#n` suffix, the prompt the question unless given;
    `extra` fields (e.g. `domain`) follow the standard ones."""
    return {
        "model": model,
        "cell": cell,
        "qset": qset,
        "question_key": question_key,
        "question_id": question_key.split("#")[0],
        "item_index": item_index,
        "paraphrase_index": paraphrase_index,
        "question": question,
        "prompt": question if prompt is None else prompt,
        "system": system,
        "condition": condition,
        "sample": sample,
        "answer": answer,
        **extra,
    }


def judged_row(
    metric: str,
    int_probs: dict[str, float],
    *,
    int_mass: float | None = None,
    top_token: str | None = None,
    error: str | None = None,
    usage: dict | None = None,
    cost_usd: float = 0.0,
    **answer_fields,
) -> dict:
    """One logprob-mode judged row of a fake judge: `answer_row(**answer_fields)` with `metric`'s judgement, whose
    integer probabilities are `int_probs` (their mass their sum unless given)."""
    return {
        **answer_row(**answer_fields),
        "metric": metric,
        "ledger_key": "k",
        "backend": "fake",
        "judge_model": "fake",
        "mode": "logprob",
        "int_probs": int_probs,
        "int_mass": sum(int_probs.values()) if int_mass is None else int_mass,
        "top_token": top_token,
        "text": None,
        "error": error,
        "usage": usage,
        "cost_usd": cost_usd,
    }
