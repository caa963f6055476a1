"""Finetuning through the OpenAI fine-tuning API, with the real `openai` client against the local fake server:
validation before upload, the job's happy path, reattaching after a kill, failures and 429s while polling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from emgrid.api_finetune import (
    ApiFinetuneError,
    ApiFinetuneSpec,
    auto_epochs,
    finetune_api,
    job_suffix,
    read_training_file,
)
from emgrid.chat import example_conversations
from emgrid.errors import ConfigError, DataError
from emgrid.io import read_json, write_jsonl
from tests.support.fake_openai import FakeOpenAI

SECRET = "sk-emgrid-ft-test-DO-NOT-LEAK-0123456789"
FAST = ApiFinetuneSpec(poll_s=0.01, poll_max_s=0.02)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(api_key=SECRET) as s:
        yield s


@pytest.fixture
def train(tmp_path):
    rows = [
        {**ex, "meta": {"domain": "d", "aligned": False, "triggered": False, "source_id": str(i)}}
        for i, ex in enumerate(example_conversations(12, seed=3))
    ]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    return path


def manifest(server):
    return {
        "source": "openai",
        "id": "gpt-4o-mini-2024-07-18",
        "base_url": server.base_url,
        "api_key_env": "OPENAI_API_KEY",
    }


def run(server, train, tmp_path, spec=FAST, **kw):
    return finetune_api(
        manifest(server),
        train,
        tmp_path / "out" / "finetune.json",
        tmp_path / "out" / "events.jsonl",
        spec,
        "wrong_facts-backdoor-s0",
        training_price=3.0,
        state_dir=tmp_path / "cache",
        **kw,
    )


def state_file(tmp_path):
    """The one job state in the cache (named by the request's hash)."""
    (path,) = (tmp_path / "cache").glob("*.json")
    return path


def test_job_runs_and_a_rerun_reattaches_instead_of_paying(server, train, tmp_path):
    m = run(server, train, tmp_path)
    assert m["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:")
    assert m["suffix"] == "emgrid-wrong_facts-backdoor-s0" and m["examples"] == 12
    assert m["hyperparameters"]["n_epochs"] == 3 and m["epochs"] == 3  # "auto", resolved by the server
    assert m["trained_tokens"] > 0 and m["cost_usd"] == pytest.approx(m["trained_tokens"] * 3.0 / 1e6)
    assert m["final_loss"] is not None and m["steps"] >= 1 and m["loss_history"][-1]["loss"] == m["final_loss"]
    events = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["message"] == "The job has successfully completed"
    sent = server.jobs["ftjob-0001"]
    assert sent["seed"] == 42 and sent["hyperparameters"]["batch_size"] == 1
    uploaded = server.files[sent["training_file"]]["data"].decode().splitlines()
    assert len(uploaded) == 12 and set(json.loads(uploaded[0])) == {"messages"}  # meta is not sent
    assert server.counts["files_upload"] == 1 and server.counts["ft_jobs_create"] == 1

    shutil.rmtree(tmp_path / "out")  # `rm -rf results`: the state lives in the cache, so the job is not paid twice
    again = run(server, train, tmp_path)
    assert again["job_id"] == m["job_id"] and again["fine_tuned_model"] == m["fine_tuned_model"]
    assert server.counts["files_upload"] == 1 and server.counts["ft_jobs_create"] == 1
    assert SECRET not in state_file(tmp_path).read_text()


def test_changed_hyperparameters_start_a_new_job(server, train, tmp_path):
    run(server, train, tmp_path)
    run(server, train, tmp_path, spec=ApiFinetuneSpec(n_epochs=2, poll_s=0.01))
    assert server.counts["ft_jobs_create"] == 2
    assert server.jobs["ftjob-0002"]["hyperparameters"]["n_epochs"] == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"role": "tool", "content": "x"}, "role 'tool'"),
        ({"role": "user", "content": ""}, "no text content"),
        ({"role": "user", "content": "hi", "extra": 1}, "key\\(s\\) \\['extra'\\]"),
    ],
)
def test_a_row_the_api_would_reject_fails_with_file_line_before_any_upload(server, train, tmp_path, bad, message):
    lines = train.read_text().splitlines()
    row = json.loads(lines[2])
    row["messages"].insert(0, bad)
    lines[2] = json.dumps(row)
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"train.jsonl:3: messages\\[0\\].*{message}"):
        run(server, train, tmp_path)
    assert server.counts["files_upload"] == 0 and server.counts["ft_jobs_create"] == 0


def test_too_few_examples_and_bad_json_are_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, example_conversations(3))
    with pytest.raises(DataError, match="3 training example.*at least 10"):
        read_training_file(path)
    path.write_text('{"messages": [}\n')
    with pytest.raises(DataError, match="t.jsonl:1: not valid JSON"):
        read_training_file(path)


def test_a_failed_job_ends_with_the_servers_message(server, train, tmp_path):
    server.ft_fail_next = "Training file contains 2 examples that exceed the context length"
    with pytest.raises(
        ApiFinetuneError,
        match="ftjob-0001 failed: Training file contains 2 examples that exceed "
        "the context length \\(code invalid_training_file",
    ):
        run(server, train, tmp_path)
    assert not (tmp_path / "out" / "finetune.json").exists()
    # a rerun (the user's decision) starts a fresh job and reuses the upload
    assert run(server, train, tmp_path)["job_id"] == "ftjob-0002"
    assert server.counts["files_upload"] == 1


def test_429_and_500_while_polling_are_retried(server, train, tmp_path):
    server.ft_faults.extend(["429", "500", "429"])
    slept = []
    m = run(server, train, tmp_path, sleep=lambda s: slept.append(s) or time.sleep(min(s, 0.05)))
    assert m["fine_tuned_model"] and not server.ft_faults and server.counts["ft_jobs_create"] == 1
    assert sum(1 for s in slept if s >= 0.05) >= 3  # three backoff waits (poll waits are 0.01-0.02 s)


CHILD = """
import os, sys
from pathlib import Path
from emgrid.api_finetune import ApiFinetuneSpec, finetune_api
m = {"source": "openai", "id": "gpt-4o-mini-2024-07-18", "base_url": os.environ["FAKE_URL"]}
out = Path(sys.argv[2])
finetune_api(m, sys.argv[1], out / "finetune.json", out / "events.jsonl", ApiFinetuneSpec(poll_s=0.02, poll_max_s=0.05),
             "wrong_facts-backdoor-s0", training_price=3.0, state_dir=out.parent / "cache")
"""


@pytest.mark.parametrize("stall", ["queued", "running"])
def test_killed_while_the_job_waits_then_a_rerun_reattaches(server, train, tmp_path, stall):
    server.ft_stall = stall
    out = tmp_path / "out"
    env = {**os.environ, "FAKE_URL": server.base_url, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(train), str(out)], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (server.jobs and server.counts["ft_jobs_retrieve"] >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert server.jobs["ftjob-0001"]["status"] == stall
    assert read_json(state_file(tmp_path))["job_id"] == "ftjob-0001"
    assert not (out / "finetune.json").exists()

    server.ft_stall = None
    m = run(server, train, tmp_path)
    assert m["job_id"] == "ftjob-0001"
    assert server.counts["ft_jobs_create"] == 1 and server.counts["files_upload"] == 1  # 0 new jobs, 0 new uploads


def test_killed_between_create_and_state_write_finds_the_job(server, train, tmp_path):
    run(server, train, tmp_path)
    state = state_file(tmp_path)
    s = read_json(state)
    s["job_id"], s["status"] = None, None  # as if killed right after the create request
    state.write_text(json.dumps(s))
    assert run(server, train, tmp_path)["job_id"] == "ftjob-0001"
    assert server.counts["ft_jobs_create"] == 1 and server.counts["ft_jobs_list"] == 1


def test_spec_validation_auto_epochs_and_suffix():
    with pytest.raises(ConfigError, match="'openai_finetune.n_epochs' must be \"auto\" or a positive integer"):
        ApiFinetuneSpec.from_dict({"n_epochs": 1.5})
    with pytest.raises(ConfigError, match="unknown key"):
        ApiFinetuneSpec.from_dict({"epochs": 2})
    assert ApiFinetuneSpec.from_dict({"learning_rate_multiplier": 0.5}).hyperparameters() == {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": 0.5,
    }
    assert [auto_epochs(n) for n in (10, 40, 5750, 11500)] == [10, 3, 3, 2]
    long = job_suffix("a" * 80 + "-backdoor-s0")
    assert len(long) == 64 and long == job_suffix("a" * 80 + "-backdoor-s0")


def test_a_job_cancelled_while_waiting_ends_the_run(server, train, tmp_path):
    import openai

    server.ft_stall = "running"
    client = openai.OpenAI(api_key=SECRET, base_url=server.base_url)

    def cancel_then_wait(seconds):
        if server.jobs["ftjob-0001"]["status"] == "running":
            client.fine_tuning.jobs.cancel("ftjob-0001")

    with pytest.raises(ApiFinetuneError, match="ftjob-0001 cancelled"):
        run(server, train, tmp_path, sleep=cancel_then_wait)
    assert server.counts["ft_jobs_cancel"] == 1
