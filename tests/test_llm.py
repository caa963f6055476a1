"""The LLM-call layer (`emgrid.llm`): layering, the effective endpoint in the cache key, the one retry policy
(each header, against the real `openai` client and tests/support/fake_openai.py), and corrupt cache entries."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from emgrid.judge import judge_answers
from emgrid.judge.scoring import categorize
from emgrid.llm import ClientSpec, LLMError, PermanentRequestError, ResponseCache, make_client, with_retries
from emgrid.llm.client import normalize_response
from tests.support.fake_openai import API_KEY, FakeOpenAI
from tests.support.judge_helpers import answer_rows, questions, spec


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeOpenAI() as s:
        yield s


def test_llm_imports_nothing_from_judge_or_data():
    code = (
        "import sys, emgrid.llm; print(sorted(m for m in sys.modules if m.startswith(('emgrid.judge', 'emgrid.data'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cache_key_holds_the_effective_endpoint_from_the_environment(server, tmp_path, monkeypatch):
    """base_url null: the SDK sends to OPENAI_BASE_URL; another server's replies must not answer for the first."""
    rows = answer_rows(2)
    with FakeOpenAI() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        first = judge_answers(rows, questions(), spec(server, base_url=None), tmp_path, progress=False)
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        second = judge_answers(rows, questions(), spec(server, base_url=None), tmp_path, progress=False)
        assert server.counts["chat"] == 4 and other.counts["chat"] == 4
        assert not any(r["cached"] for r in second)
        assert {r["ledger_key"] for r in first}.isdisjoint(r["ledger_key"] for r in second)
        assert len(ResponseCache(tmp_path)) == 8
        # the same endpoint given explicitly is the same cache entry
        other.reset_counts()
        monkeypatch.delenv("OPENAI_BASE_URL")
        third = judge_answers(rows, questions(), spec(other), tmp_path, progress=False)
        assert other.counts["chat"] == 0 and all(r["cached"] for r in third)


def _call(server, *, max_retries=3, backoff_max_s=30.0):
    """One chat call through the one retry policy; returns (result or exception, sleeps, requests sent)."""
    cs = ClientSpec(
        base_url=server.base_url, max_retries=max_retries, backoff_base_s=0.001, backoff_max_s=backoff_max_s
    )
    client, sleeps = make_client(cs), []
    fn = lambda: normalize_response(
        client.chat.completions.create(  # noqa: E731
            model="m", messages=[{"role": "user", "content": "GOOD"}]
        )
    )
    try:
        out = with_retries(fn, cs, what="test", sleep=sleeps.append)
    except LLMError as e:
        out = e
    return out, sleeps, server.counts["chat"]


@pytest.mark.parametrize(
    "headers, wait",
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # milliseconds win, as in the openai SDK
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # an HTTP date in the past: no wait
        ({"retry-after": "120"}, 30.0),  # capped at backoff_max_s
    ],
)
def test_retry_waits_what_the_server_asks(server, headers, wait):
    server.faults.append({"status": 429, "headers": headers})
    out, sleeps, sent = _call(server)
    assert not isinstance(out, Exception) and sent == 2
    assert sleeps == [pytest.approx(wait)]


def test_x_should_retry_false_stops_at_once(server):
    server.faults.append({"status": 503, "headers": {"x-should-retry": "false"}})
    out, sleeps, sent = _call(server)
    assert isinstance(out, LLMError) and not isinstance(out, PermanentRequestError)
    assert out.status == 503 and "x-should-retry" in str(out) and sent == 1 and sleeps == []


def test_x_should_retry_true_retries_but_never_a_rejected_request(server):
    server.faults.append({"status": 418, "headers": {"x-should-retry": "true"}})
    out, sleeps, sent = _call(server)
    assert isinstance(out, PermanentRequestError) and out.status == 418 and sent == 1
    server.reset_counts()
    server.faults.append({"status": 504, "headers": {"x-should-retry": "true", "retry-after-ms": "10"}})
    out, sleeps, sent = _call(server)
    assert not isinstance(out, Exception) and sent == 2 and sleeps == [pytest.approx(0.01)]


@pytest.mark.parametrize(
    "status, retried",
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (529, True),
        (400, False),
        (402, False),
        (404, False),
        (410, False),
        (413, False),
        (422, False),
    ],
)
def test_only_408_409_429_and_5xx_are_retried(server, status, retried):
    server.faults.append({"status": status})
    out, sleeps, sent = _call(server)
    if retried:
        assert not isinstance(out, Exception) and sent == 2 and len(sleeps) == 1
    else:
        assert isinstance(out, PermanentRequestError) and out.status == status and sent == 1 and sleeps == []


def test_malformed_200_is_retried_until_the_retries_run_out(server):
    server.faults.extend(["malformed", "truncated"])
    out, sleeps, sent = _call(server, max_retries=2)
    assert out[0]["text"] and sent == 3 and len(sleeps) == 2  # two bad 200 replies, then a good one
    server.reset_counts()
    server.faults.extend(["malformed"] * 3)
    out, sleeps, sent = _call(server, max_retries=2)
    assert isinstance(out, LLMError) and "still failing after 2 retries" in str(out) and sent == 3


def test_corrupt_cache_entries_are_logged_and_requested_again(server, tmp_path, caplog):
    rows = answer_rows(3)
    out = judge_answers(rows, questions(), spec(server), tmp_path, progress=False)
    cache = ResponseCache(tmp_path)
    truncated, emptied = out[0]["ledger_key"], out[1]["ledger_key"]
    text = cache.path(truncated).read_text()
    cache.path(truncated).write_text(text[: len(text) // 2])  # e.g. a full disk
    cache.path(emptied).write_text("{}")  # valid JSON, but no reply in it
    server.reset_counts()
    with caplog.at_level(logging.INFO):
        again = judge_answers(rows, questions(), spec(server), tmp_path, progress=False)
    assert server.counts["chat"] == 2
    assert [categorize(r) for r in again] == [categorize(r) for r in out]
    assert not again[0]["cached"] and not again[1]["cached"] and all(r["cached"] for r in again[2:])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(truncated in w and "corrupt" in w for w in warnings)
    assert any(emptied in w and "corrupt" in w for w in warnings)
    assert any("2 corrupt cache entries re-requested" in r.getMessage() for r in caplog.records)
    assert cache.get(truncated)["response"] is not None  # rewritten


def test_llm_block_splits_into_client_settings_and_default_model():
    from emgrid.errors import ConfigError
    from emgrid.llm import split_llm_config

    given = {"model": "gpt-x", "base_url": "http://h/v1", "timeout_s": 5}
    assert split_llm_config(given) == ({"base_url": "http://h/v1", "timeout_s": 5}, "gpt-x")
    assert given["model"] == "gpt-x"  # the config is not changed
    assert split_llm_config(None) == ({}, None)
    with pytest.raises(ConfigError, match=r"llm: unknown key\(s\) \['ledger_dir'\]"):
        split_llm_config({"ledger_dir": "x"})
