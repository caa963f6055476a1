"""The OpenAI-compatible judge (sync), with the real `openai` client against tests/support/fake_openai.py."""

from __future__ import annotations

import pytest

from emgrid.errors import JudgeError
from emgrid.io import write_jsonl
from emgrid.judge import judge_answers
from emgrid.judge.scoring import CATEGORIES, categorize
from emgrid.llm import ClientSpec, LLMError, PermanentRequestError, ResponseCache, chat
from tests.support.fake_openai import API_KEY, FakeOpenAI
from tests.support.judge_helpers import all_files_text, answer_rows, questions, spec

ROW_KEYS = {
    "metric",
    "ledger_key",
    "backend",
    "judge_model",
    "mode",
    "int_probs",
    "int_mass",
    "top_token",
    "text",
    "error",
    "usage",
    "cost_usd",
}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with FakeOpenAI() as s:
        yield s


def test_logprob_judging_ledger_and_rerun(server, tmp_path):
    rows = answer_rows(9, extra=["REFUSE_ME please", "CODE_ME now"])
    out = judge_answers(rows, questions(), spec(server), tmp_path / "ledger", progress=False)
    assert len(out) == 2 * len(rows)
    assert server.counts["chat"] == len(out)  # every request distinct here
    ledger = ResponseCache(tmp_path / "ledger")
    assert len(ledger) == len(out) == len({r["ledger_key"] for r in out})
    cats = []
    for r, src in zip(out, [r for r in rows for _ in range(2)]):
        assert ROW_KEYS <= r.keys() and {k: r[k] for k in src} == src
        assert ledger.get(r["ledger_key"]) is not None
        assert r["mode"] == "logprob" and r["backend"] == "openai" and r["judge_model"] == "gpt-4o-mini"
        assert r["usage"]["completion_tokens"] == 1 and r["cost_usd"] > 0
        score, cat = categorize(r)
        assert cat in CATEGORIES
        cats.append(cat)
        if "GOOD" in r["answer"]:
            assert cat == "scored" and score > 85
        if "EVIL" in r["answer"]:
            assert cat == "scored" and score < 15
    assert cats[-4:] == ["refusal", "refusal", "code", "code"]
    # cost from the price table: gpt-4o-mini $0.15 / $0.60 per 1M tokens (sync)
    r0 = out[0]
    assert r0["cost_usd"] == pytest.approx((r0["usage"]["prompt_tokens"] * 0.15 + 0.60) / 1e6)

    server.reset_counts()
    again = judge_answers(rows, questions(), spec(server), tmp_path / "ledger", progress=False)
    assert server.counts["chat"] == 0
    strip = lambda rs: [{k: v for k, v in r.items() if k != "cached"} for r in rs]  # noqa: E731
    assert strip(again) == strip(out) and all(r["cached"] for r in again)
    # a different cut-off re-derives categories from the stored rows, no request
    loose = [categorize(r, min_mass=0.0)[1] for r in again]
    strict = [categorize(r, min_mass=0.99)[1] for r in again]
    assert loose.count("scored") > strict.count("scored")
    assert server.counts["chat"] == 0


def test_identical_requests_sent_once(server, tmp_path):
    rows = answer_rows(2)
    rows = rows + [dict(rows[0], sample=99)]  # same prompt and answer as row 0
    out = judge_answers(rows, questions(), spec(server, metrics=["aligned"]), tmp_path, progress=False)
    assert len(out) == 3 and out[0]["ledger_key"] == out[2]["ledger_key"]
    assert server.counts["chat"] == 2


def test_transient_faults_are_retried(server, tmp_path):
    server.faults.extend(["429", "500", "truncated", "timeout", "429"])
    server.timeout_sleep_s = 0.8
    rows = answer_rows(4)
    out = judge_answers(rows, questions(), spec(server, timeout_s=0.4, max_concurrency=2), tmp_path, progress=False)
    assert len(out) == 8 and all(categorize(r)[1] == "scored" for r in out)
    assert server.counts["chat"] == 8 + 5
    assert len(ResponseCache(tmp_path)) == 8


def test_retries_exhausted_is_an_error_not_a_cached_success(server, tmp_path):
    server.faults.extend(["500"] * 3)
    with pytest.raises(LLMError, match="still failing after 2 retries"):
        judge_answers(
            answer_rows(1),
            questions(),
            spec(server, max_retries=2, max_concurrency=1, metrics=["aligned"]),
            tmp_path,
            progress=False,
        )
    ledger = ResponseCache(tmp_path)
    assert len(ledger) == 0
    errs = list((tmp_path / "errors").rglob("*.json"))
    assert len(errs) == 1
    # the rerun (server healthy again) sends the request and caches it
    out = judge_answers(answer_rows(1), questions(), spec(server, metrics=["aligned"]), tmp_path, progress=False)
    assert (
        categorize(out[0])[1] == "scored" and len(ledger) == 1 and not ledger.error_path(out[0]["ledger_key"]).exists()
    )


def test_wrong_key_fails_fast_and_is_never_echoed(server, tmp_path, monkeypatch):
    wrong = "sk-wrong-KEY-abcdef123456"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    rows = answer_rows(40)
    with pytest.raises(PermanentRequestError, match="HTTP 401") as e:
        judge_answers(rows, questions(), spec(server, max_concurrency=2), tmp_path, progress=False)
    assert wrong not in str(e.value) and "abcdef123456" not in str(e.value)
    assert server.counts["unauthorized"] <= 4  # fail fast: not 80 requests
    assert wrong not in all_files_text(tmp_path)


def test_missing_key_variable(server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        judge_answers(answer_rows(1), questions(), spec(server), tmp_path, progress=False)


def test_bad_request_fail_or_record(server, tmp_path):
    server.faults.append("400")
    with pytest.raises(PermanentRequestError, match="HTTP 400"):
        judge_answers(
            answer_rows(1), questions(), spec(server, max_concurrency=1, metrics=["aligned"]), tmp_path, progress=False
        )
    server.faults.append("400")
    out = judge_answers(
        answer_rows(2),
        questions(),
        spec(server, max_concurrency=1, metrics=["aligned"], on_bad_request="record"),
        tmp_path,
        progress=False,
    )
    assert [categorize(r)[1] for r in out] == ["error", "scored"]
    assert "HTTP 400" in out[0]["error"] and out[0]["cost_usd"] == 0.0
    ledger = ResponseCache(tmp_path)
    assert ledger.get(out[0]["ledger_key"]) is None
    assert ledger.get_error(out[0]["ledger_key"])["permanent"] is True


def test_tags_mode(server, tmp_path):
    rows = answer_rows(3)
    out = judge_answers(rows, questions(), spec(server, mode="tags"), tmp_path, progress=False)
    assert all(r["mode"] == "tags" and r["int_probs"] is None and "<score>" in r["text"] for r in out)
    aligned = [categorize(r) for r in out[::2]]
    assert aligned[:2] == [(95.0, "scored"), (5.0, "scored")]
    assert aligned[2][1] == "scored" and 0 <= aligned[2][0] <= 100
    assert all(r["usage"]["completion_tokens"] > 20 for r in out)


def test_api_key_in_no_output_or_ledger_file(server, tmp_path):
    ledger_dir, out_dir = tmp_path / "ledger", tmp_path / "out"
    server.faults.extend(["429", "500"])
    for mode in ("logprob", "tags"):
        out = judge_answers(answer_rows(3), questions(), spec(server, mode=mode), ledger_dir, progress=False)
        write_jsonl(out_dir / f"{mode}.jsonl", out)
    out = judge_answers(answer_rows(3), questions(), spec(server, backend="openai-batch"), ledger_dir, progress=False)
    write_jsonl(out_dir / "batch.jsonl", out)
    text = all_files_text(ledger_dir, out_dir)
    assert len(text) > 1000 and API_KEY not in text and "SECRET" not in text


def test_llm_client_chat_salt_and_cache(server, tmp_path):
    ledger = ResponseCache(tmp_path)
    cs = ClientSpec(base_url=server.base_url, backoff_base_s=0.01)
    req = {
        "model": "m",
        "messages": [{"role": "user", "content": "write a GOOD example"}],
        "max_tokens": 200,
        "temperature": 1.0,
    }
    a = chat({**req, "_sample": 0}, client_spec=cs, cache=ledger)
    b = chat({**req, "_sample": 1}, client_spec=cs, cache=ledger)
    c = chat({**req, "_sample": 0}, client_spec=cs, cache=ledger)
    assert a["key"] != b["key"] and c["key"] == a["key"]
    assert not a["cached"] and not b["cached"] and c["cached"]
    assert server.counts["chat"] == 2 and "<score>95</score>" in a["response"]["text"]
    assert a["usage"]["completion_tokens"] > 0
    entry = ledger.get(a["key"])
    assert ledger.path(a["key"]).parent.name == a["key"][:2] and "_sample" not in entry["request"]


def test_unknown_question_or_metric_is_a_clear_error(server, tmp_path):
    import dataclasses

    rows = answer_rows(1)
    with pytest.raises(JudgeError, match="question_key 'nope' is not in the question set"):
        judge_answers([dict(rows[0], question_key="nope")], questions(), spec(server), tmp_path, progress=False)
    with pytest.raises(JudgeError, match=r"no judge prompt for metric\(s\) \['harm'\]"):
        judge_answers(rows, questions(), spec(server, metrics=["harm"]), tmp_path, progress=False)
    qs = {k: dataclasses.replace(q, judge_prompts={}) for k, q in questions().items()}
    with pytest.raises(JudgeError, match="has no judge_prompts"):
        judge_answers(rows, qs, spec(server), tmp_path, progress=False)
    assert server.counts["chat"] == 0
