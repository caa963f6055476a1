"""Response-cache keys, atomic concurrent writes, and JudgeSpec parsing."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from emgrid.errors import ConfigError
from emgrid.judge.cost import cost_usd
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import ResponseCache, request_key

MSG = [{"role": "user", "content": "rate {this}"}]


def test_key_depends_on_everything_that_changes_the_reply():
    base = request_key("openai", "gpt-4o", MSG, {"max_tokens": 1, "temperature": 0})
    assert base == request_key("openai", "gpt-4o", MSG, {"temperature": 0, "max_tokens": 1})  # canonical order
    assert (
        len(
            {
                base,
                request_key("hf", "gpt-4o", MSG, {"max_tokens": 1, "temperature": 0}),
                request_key("openai", "gpt-4o-mini", MSG, {"max_tokens": 1, "temperature": 0}),
                request_key(
                    "openai",
                    "gpt-4o",
                    [{"role": "user", "content": "rate {that}"}],
                    {"max_tokens": 1, "temperature": 0},
                ),
                request_key("openai", "gpt-4o", MSG, {"max_tokens": 2, "temperature": 0}),
            }
        )
        == 5
    )


def _writer(args):
    root, i = args
    led = ResponseCache(root)
    for j in range(30):
        key = request_key("openai", "m", [{"role": "user", "content": str(j)}], {})
        led.put(key, {"j": j}, {"text": "x" * 2000, "writer": 0})  # same content from every process
    return True


def test_concurrent_processes_write_the_same_keys_safely(tmp_path):
    with mp.get_context("spawn").Pool(3) as pool:
        assert all(pool.map(_writer, [(str(tmp_path), i) for i in range(3)]))
    led = ResponseCache(tmp_path)
    assert len(led) == 30
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 30 and not any(p.name.endswith(".tmp") for p in files)  # no leftovers
    for p in files:
        entry = json.loads(p.read_text())
        assert p.parent.name == entry["key"][:2] and p.stem == entry["key"]


def test_error_entries_are_separate_and_cleared_by_success(tmp_path):
    led = ResponseCache(tmp_path)
    k = request_key("openai", "m", MSG, {})
    led.put_error(k, {"model": "m"}, "HTTP 500", permanent=False)
    assert led.get(k) is None and led.get_error(k)["error"] == "HTTP 500" and len(led) == 0
    led.put(k, {"model": "m"}, {"text": "1"})
    assert led.get(k)["response"] == {"text": "1"} and led.get_error(k) is None


def test_spec_from_dict_and_defaults():
    s = JudgeSpec.from_dict(
        {
            "backend": "openai",
            "model": "gpt-4o-mini",
            "mode": "tags",
            "ledger_dir": "x",
            "prices": {"gpt-4o-mini": {"input": 1.0, "output": 2.0}},
        }
    )
    assert s.effective_max_tokens == 256 and "logprobs" not in s.api_params()
    assert JudgeSpec().api_params() == {
        "max_tokens": 1,
        "temperature": 0.0,
        "seed": 0,
        "logprobs": True,
        "top_logprobs": 20,
    }
    assert cost_usd({"prompt_tokens": 1_000_000, "completion_tokens": 500_000}, s) == pytest.approx(2.0)
    assert cost_usd({"prompt_tokens": 1_000_000, "completion_tokens": 0}, s, batch=True) == pytest.approx(0.5)
    assert cost_usd({"prompt_tokens": 10, "completion_tokens": 1}, JudgeSpec(model="unknown-model")) == 0.0
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['temprature'\]"):
        JudgeSpec.from_dict({"temprature": 0})
    with pytest.raises(ConfigError, match="judge.backend"):
        JudgeSpec.from_dict({"backend": "vllm"})
    with pytest.raises(ConfigError, match="judge.mode"):
        JudgeSpec.from_dict({"backend": "hf", "mode": "tags"})
