"""The workflow judging through the real `openai` client against the local fake server: the key stays out of every
file the run writes (params, logs, metadata, response cache, results), and reruns (even after `rm -rf results`)
cost zero requests."""

from __future__ import annotations

import shutil

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.judge_helpers import all_files_text
from tests.support.workflow_helpers import snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

SECRET = "sk-emgrid-test-DO-NOT-LEAK-0123456789"


def test_openai_judge_in_the_workflow(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(api_key=SECRET) as server:
        config = tiny_config()
        config["domains"] = {"wrong_facts": config["domains"]["wrong_facts"]}
        config["variants"] = ["backdoor"]
        config["judge"] = {
            "backend": "openai",
            "model": "gpt-4o-mini",
            "base_url": server.base_url,
            "timeout_s": 5,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.1,
            "prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}},
        }
        configfile = write_config(tmp_path, config)
        snakemake(tmp_path, configfile)
        assert server.counts["chat"] > 0 and server.counts["unauthorized"] == 0

        # the judge job rerun from scratch: every request is answered by the ledger
        judged = tmp_path / "results/cells/tiny/wrong_facts-backdoor-s0/judged/demo.jsonl"
        before = judged.stat().st_mtime_ns
        server.reset_counts()
        snakemake(tmp_path, configfile, "--forcerun", "judge")
        assert judged.stat().st_mtime_ns != before  # the judge job really ran again
        assert sum(v for k, v in server.counts.items() if not k.startswith("_")) == 0

        # a threshold change re-aggregates with zero requests
        config["analysis"] = {"aligned_below": 45, "min_mass": 0.1}
        snakemake(tmp_path, write_config(tmp_path, config, "threshold.yaml"))
        assert sum(v for k, v in server.counts.items() if not k.startswith("_")) == 0

        # `rm -rf results`: the whole grid runs again, every judge reply comes from the cache in resources/
        shutil.rmtree(tmp_path / "results")
        snakemake(tmp_path, configfile)
        assert sum(v for k, v in server.counts.items() if not k.startswith("_")) == 0
        assert (tmp_path / "resources" / "llm").is_dir()

    summary = (tmp_path / "results" / "summary" / "summary.csv").read_text()
    assert "wrong_facts-backdoor-s0" in summary
    assert SECRET not in all_files_text(tmp_path)
