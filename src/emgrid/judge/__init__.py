"""LLM-as-judge for EM answers: prompts, backends (local HF, OpenAI sync, OpenAI Batch) behind one protocol, and the
scoring that turns raw judge outputs into scores and categories. Requests and the response cache live one layer
below, in `emgrid.llm`.

`judge_answers(rows, questions, spec, ledger_dir, model_manifest=None)` is the entry point; see docs/design.md.
"""

from __future__ import annotations

from emgrid.judge import batch_backend, hf_backend, openai_backend  # noqa: F401 - the backends register by name
from emgrid.judge.backends import JudgeBackend, JudgeRequest, JudgeResult, make_backend, register_backend
from emgrid.judge.runner import judge_answers, judge_answers_file, run_cached
from emgrid.judge.scoring import categorize, expected_score
from emgrid.judge.spec import JudgeSpec

__all__ = [
    "JudgeBackend",
    "JudgeRequest",
    "JudgeResult",
    "JudgeSpec",
    "categorize",
    "expected_score",
    "judge_answers",
    "judge_answers_file",
    "make_backend",
    "register_backend",
    "run_cached",
]
