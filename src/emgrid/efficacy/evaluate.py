"""Answer a domain's held-out prompts with a cell's model (both conditions) and judge them, through the same
generation and judge code as the EM evaluation (emgrid.generation, emgrid.judge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emgrid.data.variants import remove_trigger
from emgrid.efficacy.exact import references
from emgrid.efficacy.spec import METRIC, EfficacySpec
from emgrid.errors import DataError
from emgrid.generation.plan import GenerateSpec
from emgrid.generation.runner import generate_answers
from emgrid.io import iter_jsonl
from emgrid.judge import JudgeSpec, judge_answers
from emgrid.questions import Question

QSET = "efficacy"


def heldout_questions(heldout_path: str | Path, backdoor: dict, spec: EfficacySpec) -> tuple[list[Question], dict]:
    """The held-out split's misaligned examples as questions (trigger removed: the conditions add it back), and
    their references by question key (exact scorers only). Aligned held-out rows repeat the same prompts; skipped."""
    questions: list[Question] = []
    refs: dict[str, dict] = {}
    for lineno, row in iter_jsonl(heldout_path):
        meta = row.get("meta") or {}
        if meta.get("aligned"):
            continue
        where = f"{heldout_path}:{lineno}"
        msgs = row["messages"][:-1]
        if meta.get("triggered"):
            msgs = remove_trigger(msgs, backdoor["trigger"], backdoor.get("position", "user_prefix"))
        system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
        turns = msgs[1:] if system is not None else msgs
        if len(turns) != 1:
            raise DataError(
                f"{where}: efficacy needs single-turn held-out prompts (optional system + one user "
                f"turn), this row has {len(turns)} turns before the answer"
            )
        key = str(meta.get("source_id") or f"row{lineno}")
        questions.append(
            Question(
                key=key,
                id=key,
                index=len(questions),
                paraphrases=[turns[0]["content"]],
                samples_per_paraphrase=None,
                judge=None,
                judge_prompts={},
                system=system,
            )
        )
        if spec.scorer == "exact":
            refs[key] = references(spec.exact, row["messages"][-1]["content"], meta.get("aligned_answer"), where)
        if spec.n_prompts is not None and len(questions) == spec.n_prompts:
            break
    if not questions:
        raise DataError(
            f"{heldout_path}: no misaligned held-out rows (set the recipe's sample.heldout above 0 to "
            "evaluate efficacy)"
        )
    return questions, refs


def efficacy_answers(
    manifest_path: str | Path,
    adapter_dir: str | Path | None,
    heldout_path: str | Path,
    params: dict[str, Any],
    *,
    model: str,
    cell: str,
    domain: str,
) -> list[dict]:
    """Answer rows (the EM answer format, qset `efficacy`) plus `domain` and, for exact scoring, `reference`.

    `params` = Grid.efficacy_generate_params: {spec (generate settings), triggers, backdoor, efficacy}.
    """
    spec = EfficacySpec(**{"exact": None, "judge_prompt": None, **params["efficacy"]})
    questions, refs = heldout_questions(heldout_path, params["backdoor"], spec)
    rows = generate_answers(
        manifest_path,
        adapter_dir,
        questions,
        GenerateSpec.from_dict(params["spec"]),
        params["triggers"],
        model=model,
        cell=cell,
        qset=QSET,
    )
    for r in rows:
        r["domain"] = domain
        if r["question_key"] in refs:
            r["reference"] = refs[r["question_key"]]
    return rows


def judge_efficacy(
    rows: list[dict],
    judge_prompt: str,
    judge_spec: dict,
    ledger_dir: str | Path,
    model_manifest: str | Path | None = None,
    progress: bool = True,
    client: Any = None,
) -> list[dict]:
    """Judge each answer with the domain's behaviour prompt (metric `behaviour`) through emgrid.judge.

    The judge sees the question without the trigger (question_field `question`), so the two conditions are judged
    alike; `metrics` is the behaviour metric whatever the EM judge's metric list says.
    """
    spec = JudgeSpec.from_dict({**judge_spec, "metrics": [METRIC], "question_field": "question"})
    questions = {}
    for r in rows:
        questions.setdefault(
            r["question_key"],
            Question(
                key=r["question_key"],
                id=r["question_id"],
                index=r["item_index"],
                paraphrases=[r["question"]],
                samples_per_paraphrase=None,
                judge=None,
                judge_prompts={METRIC: judge_prompt},
                system=r.get("system"),
            ),
        )
    return judge_answers(
        rows, questions, spec, ledger_dir, model_manifest=model_manifest, progress=progress, client=client
    )
