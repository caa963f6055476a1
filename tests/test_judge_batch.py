"""The OpenAI Batch judge: resumable, merges partial results, resubmits only what failed, never pays twice."""

from __future__ import annotations

import json

import pytest

from emgrid.errors import JudgeError
from emgrid.judge import judge_answers
from emgrid.judge.scoring import categorize
from emgrid.llm import ResponseCache
from tests.support.fake_openai import API_KEY, FakeOpenAI
from tests.support.judge_helpers import answer_rows, questions, spec


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with FakeOpenAI() as s:
        yield s


def bspec(server, **kw):
    return spec(server, backend="openai-batch", **kw)


def test_batch_with_failed_rows_resubmits_only_those(server, tmp_path):
    server.batch_error_rows = 3
    server.batch_polls = 3
    rows = answer_rows(6)
    out = judge_answers(rows, questions(), bspec(server), tmp_path, progress=False)
    assert len(out) == 12 and all(categorize(r)[1] == "scored" for r in out)
    assert server.counts["batches_create"] == 2 and server.counts["files_upload"] == 2
    assert server.counts["batch_rows"] == 12 and server.counts["chat"] == 0
    inputs = [server.files[b["input_file_id"]]["data"].decode().strip().splitlines() for b in server.batches.values()]
    assert [len(x) for x in inputs] == [12, 3]
    # batch prices (gpt-4o-mini: $0.075 / $0.30 per 1M)
    r = out[0]
    assert r["cost_usd"] == pytest.approx((r["usage"]["prompt_tokens"] * 0.075 + 0.30) / 1e6)
    ledger = ResponseCache(tmp_path)
    assert len(ledger) == 12 and all(ledger.get(r["ledger_key"])["batch"] for r in out)

    server.reset_counts()
    again = judge_answers(rows, questions(), bspec(server), tmp_path, progress=False)
    assert sum(server.counts[k] for k in ("batches_create", "files_upload", "batches_retrieve", "chat")) == 0
    assert [r["cost_usd"] for r in again] == [r["cost_usd"] for r in out]


def test_expired_batch_resubmits_unfinished_rows(server, tmp_path):
    server.expire_next_batch = True
    out = judge_answers(answer_rows(5), questions(), bspec(server), tmp_path, progress=False)
    assert all(categorize(r)[1] == "scored" for r in out)
    statuses = [b["status"] for b in server.batches.values()]
    assert statuses == ["expired", "completed"]
    assert server.counts["batch_rows"] == 10  # each request answered exactly once


def test_killed_while_waiting_resumes_same_batch(server, tmp_path):
    server.batch_polls = 4
    rows = answer_rows(4)
    # the "killed" job: gives up while the batch is still running, after the batch id was persisted
    with pytest.raises(JudgeError, match="rerun the same job to resume"):
        judge_answers(rows, questions(), bspec(server, batch_max_wait_s=0.0), tmp_path, progress=False)
    assert server.counts["batches_create"] == 1
    states = list((tmp_path / "state").glob("batch-*.json"))
    assert len(states) == 1 and json.loads(states[0].read_text())["batch_id"] in server.batches
    out = judge_answers(rows, questions(), bspec(server), tmp_path, progress=False)
    assert server.counts["batches_create"] == 1 and server.counts["files_upload"] == 1
    assert len(out) == 8 and all(categorize(r)[1] == "scored" for r in out)


def test_resubmission_limit(server, tmp_path):
    server.batch_error_rows = 100  # every row of the first batch fails ...
    with pytest.raises(JudgeError, match="still unanswered after 0 resubmission"):
        judge_answers(answer_rows(2), questions(), bspec(server, batch_max_resubmits=0), tmp_path, progress=False)
    assert len(list((tmp_path / "errors").rglob("*.json"))) == 4
    # ... and a rerun submits only those (now successfully), no old batch is reused
    out = judge_answers(answer_rows(2), questions(), bspec(server), tmp_path, progress=False)
    assert all(categorize(r)[1] == "scored" for r in out) and server.counts["batches_create"] == 2
    assert not list((tmp_path / "errors").rglob("*.json"))


def test_sync_rerun_reuses_batch_results(server, tmp_path):
    rows = answer_rows(3)
    judge_answers(rows, questions(), bspec(server), tmp_path, progress=False)
    server.reset_counts()
    out = judge_answers(rows, questions(), spec(server), tmp_path, progress=False)
    assert server.counts["chat"] == 0 and all(r["cached"] for r in out)


def test_large_jobs_split_into_batches_and_all_resume(server, tmp_path):
    server.batch_polls = 3
    rows = answer_rows(4)  # 8 requests, at most 3 per batch -> 3 batches
    with pytest.raises(JudgeError, match="resume"):
        judge_answers(
            rows, questions(), bspec(server, batch_max_requests=3, batch_max_wait_s=0.0), tmp_path, progress=False
        )
    assert server.counts["batches_create"] == 3
    sizes = sorted(len(server.files[b["input_file_id"]]["data"].decode().splitlines()) for b in server.batches.values())
    assert sizes == [2, 3, 3]
    out = judge_answers(rows, questions(), bspec(server, batch_max_requests=3), tmp_path, progress=False)
    assert server.counts["batches_create"] == 3 and server.counts["batch_rows"] == 8
    assert all(categorize(r)[1] == "scored" for r in out)
