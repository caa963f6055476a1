"""Checks between stages: the judge refuses an answers file that is not exactly what generate planned, and
aggregation refuses judged files that lack an answer's rows (the silent n_answers 4-instead-of-5 of issue 8)."""

from __future__ import annotations

import json

import pytest

from emgrid.aggregate import aggregate_files
from emgrid.errors import DataError
from emgrid.integrity import check_answers, check_judged, planned_answer_keys
from emgrid.questions import Question

QUESTIONS = [
    Question(
        key="q1",
        id="q1",
        index=0,
        paraphrases=["A?", "B?"],
        samples_per_paraphrase=3,
        judge=None,
        judge_prompts={"aligned": "{answer}", "coherent": "{answer}"},
    ),
    Question(
        key="q2",
        id="q2",
        index=1,
        paraphrases=["C?"],
        samples_per_paraphrase=None,
        judge=None,
        judge_prompts={"aligned": "{answer}", "coherent": "{answer}"},
    ),
]
PLAN = {"conditions": ["no_trigger", "trigger"], "samples_per_paraphrase": None}


def answers(plan=PLAN):
    keys = planned_answer_keys(QUESTIONS, plan["samples_per_paraphrase"], plan["conditions"], "tiny", "base", "demo")
    cols = ("model", "cell", "qset", "question_key", "condition", "sample", "paraphrase_index")
    return [{**dict(zip(cols, k)), "answer": f"answer {i}"} for i, k in enumerate(keys)]


def judged_rows(rows, metrics=("aligned", "coherent")):
    return [{**r, "metric": m} for r in rows for m in metrics]


def test_planned_answers_follow_generate():
    # q1: 2 paraphrases x 3 samples (file value), q2: 1 x 1 (default); x 2 conditions
    assert len(answers()) == (2 * 3 + 1) * 2
    assert len(answers({**PLAN, "samples_per_paraphrase": 2})) == (2 * 2 + 1 * 2) * 2


def test_answers_file_one_row_short_is_refused():
    rows = answers()
    check_answers(rows, QUESTIONS, PLAN, "tiny", "base", "demo", "a.jsonl")
    with pytest.raises(
        DataError,
        match=r"a.jsonl: 13 answers in the file, 14 planned; 1 missing \(first: cell=.base., "
        r"question_key='q2', condition='trigger', sample=0, paraphrase_index=0\)",
    ):
        check_answers(rows[:-1], QUESTIONS, PLAN, "tiny", "base", "demo", "a.jsonl")


def test_answers_file_with_a_repeated_or_foreign_row_is_refused():
    rows = answers()
    with pytest.raises(DataError, match="1 unexpected or repeated"):
        check_answers(rows + rows[:1], QUESTIONS, PLAN, "tiny", "base", "demo", "a.jsonl")
    with pytest.raises(DataError, match="1 missing.*1 unexpected"):
        check_answers(rows[:-1] + [{**rows[-1], "cell": "other"}], QUESTIONS, PLAN, "tiny", "base", "demo", "a.jsonl")
    with pytest.raises(DataError, match=r"a.jsonl:2: row lacks the answer field 'sample'"):
        check_answers(
            [rows[0], {k: v for k, v in rows[1].items() if k != "sample"}],
            QUESTIONS,
            PLAN,
            "tiny",
            "base",
            "demo",
            "a.jsonl",
        )


def test_judged_file_missing_an_answer_or_a_metric_is_refused():
    rows = answers()
    check_judged(judged_rows(rows), rows, "j.jsonl")
    with pytest.raises(DataError, match=r"j.jsonl: 13 answers judged, 14 planned; 1 missing"):
        check_judged(judged_rows(rows[:-1]), rows, "j.jsonl")
    with pytest.raises(
        DataError,
        match=r"has judged rows for metrics \['aligned'\], other answers of its question "
        r"for \['aligned', 'coherent'\]",
    ):
        check_judged(judged_rows(rows)[:-1], rows, "j.jsonl")


def test_aggregate_refuses_a_judged_file_one_answer_short(tmp_path):
    from tests.test_aggregate import judged

    rows = answers()
    full = [
        judged(
            m,
            80,
            cell=r["cell"],
            condition=r["condition"],
            sample=r["sample"],
            qkey=r["question_key"],
            para=r["paraphrase_index"],
            qset="demo",
        )
        for r in rows
        for m in ("aligned", "coherent")
    ]
    a, j = tmp_path / "answers.jsonl", tmp_path / "judged.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in rows))
    j.write_text("".join(json.dumps(r) + "\n" for r in full[:-2]))
    with pytest.raises(DataError, match="judged.jsonl: 13 answers judged, 14 planned; 1 missing"):
        aggregate_files([j], tmp_path / "s.csv", tmp_path / "m.csv", answers_paths=[a])
    assert not (tmp_path / "s.csv").exists()
    j.write_text("".join(json.dumps(r) + "\n" for r in full))
    aggregate_files([j], tmp_path / "s.csv", tmp_path / "m.csv", answers_paths=[a])
    assert (tmp_path / "m.csv").exists()


def test_a_latin1_byte_in_a_jsonl_file_names_file_and_line(tmp_path):
    from emgrid.io import read_jsonl

    p = tmp_path / "answers.jsonl"
    p.write_bytes(b'{"answer": "ok"}\n{"answer": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"answers.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 16"):
        read_jsonl(p)


def test_a_latin1_byte_in_a_question_file_names_the_byte_offset(tmp_path):
    from emgrid.errors import QuestionFileError
    from emgrid.questions import load_questions

    p = tmp_path / "q.yaml"
    p.write_bytes(b"- id: caf\xe9\n  type: free_form_judge_0_100\n")
    with pytest.raises(QuestionFileError, match=r"q.yaml: not valid UTF-8 \(byte 0xe9 at byte offset 9"):
        load_questions(p)
