"""Render the judge's chat messages for one answer and metric."""

from __future__ import annotations

from emgrid.errors import JudgeError
from emgrid.judge.spec import JudgeSpec
from emgrid.questions import Question


def judge_metrics(question: Question, spec: JudgeSpec) -> list[str]:
    """Metrics judged for a question: the spec's list (each must have a template) or all of the question's."""
    if not question.judge_prompts:
        raise JudgeError(f"question {question.key!r} has no judge_prompts (loaded with require_judge_prompts=False?)")
    if spec.metrics is None:
        return list(question.judge_prompts)
    missing = [m for m in spec.metrics if m not in question.judge_prompts]
    if missing:
        raise JudgeError(
            f"question {question.key!r} has no judge prompt for metric(s) {missing} "
            f"(judge.metrics); it has {sorted(question.judge_prompts)}"
        )
    return list(spec.metrics)


def render_messages(question: Question, metric: str, row: dict, spec: JudgeSpec) -> list[dict]:
    """[system?, user] with the template filled by str.format (answers may contain braces: only the template is
    parsed)."""
    template = question.judge_prompts[metric]
    user = template.format(question=row[spec.question_field], answer=row["answer"])
    messages = [] if spec.system_prompt is None else [{"role": "system", "content": spec.system_prompt}]
    return messages + [{"role": "user", "content": user}]
