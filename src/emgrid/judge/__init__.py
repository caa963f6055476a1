"""LLM-as-judge for EM answers: prompts, backends (local HF, OpenAI sync, OpenAI Batch), a request ledger, and the
scoring that turns raw judge outputs into scores and categories.

`judge_answers(rows, questions, spec, ledger_dir, model_manifest=None)` is the entry point; see docs/design.md.
"""

from __future__ import annotations

__all__ = ["JudgeSpec", "judge_answers", "Ledger", "categorize", "expected_score"]


def __getattr__(name):  # lazy: emgrid.llm_client imports emgrid.judge.ledger, which must not import the runner
    if name == "JudgeSpec":
        from emgrid.judge.spec import JudgeSpec
        return JudgeSpec
    if name == "judge_answers":
        from emgrid.judge.runner import judge_answers
        return judge_answers
    if name == "Ledger":
        from emgrid.judge.ledger import Ledger
        return Ledger
    if name in ("categorize", "expected_score"):
        from emgrid.judge import scoring
        return getattr(scoring, name)
    raise AttributeError(f"module 'emgrid.judge' has no attribute {name!r}")
