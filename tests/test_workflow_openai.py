"""The workflow through the real `openai` client against the local fake server, in one grid: an API model (source
openai) beside the tiny HF model, both judged by an OpenAI judge. finetune -> generate -> judge -> aggregate -> report
end to end (the tiny model's MIA and diversity left out: they call no API); forced reruns of the API rules and the
judge, a threshold change and rebuilding the API model's cells after `rm -rf results` cost zero requests (the response
cache and the API-job records live in resources/); the key is in no file the run writes (params, logs, metadata,
response cache, results)."""

from __future__ import annotations

import shutil

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.judge_helpers import all_files_text
from tests.support.workflow_helpers import dry_run_counts, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

SECRET = "sk-emgrid-api-model-DO-NOT-LEAK-0123456789"
SUMMARY = "results/summary/summary.csv"
API_JUDGED = tuple(f"results/cells/gpt/{cell}/judged/demo.jsonl" for cell in ("base", "wrong_facts-backdoor-s0"))


def paid(server) -> dict:
    counts = {k: server.counts[k] for k in ("files_upload", "ft_jobs_create", "chat")}
    counts["chat_generate"] = sum(v for k, v in server.counts.items() if k.startswith("chat:") and "2024-07-18" in k)
    return counts


def requests(server) -> int:
    """Every request the fake server answered since its counts were last reset."""
    return sum(v for k, v in server.counts.items() if not k.startswith("_"))


def api_config(server) -> dict:
    config = tiny_config()
    config["domains"] = {"wrong_facts": config["domains"]["wrong_facts"]}
    config["variants"] = ["backdoor"]
    config["models"]["gpt"] = {"source": "openai", "id": "gpt-4o-mini-2024-07-18", "base_url": server.base_url}
    config["openai_finetune"] = {"poll_s": 0.05, "poll_max_s": 0.1}
    config["judge"] = {
        "backend": "openai",
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "timeout_s": 5,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.1,
    }
    return config


def test_api_model_and_openai_judge_in_the_workflow(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(api_key=SECRET) as server:
        configfile = write_config(tmp_path, api_config(server))
        assert dry_run_counts(tmp_path, configfile) == {
            "prepare_model": 2,
            "build_dataset": 1,
            "finetune": 1,
            "finetune_openai": 1,
            "generate": 2,
            "generate_openai": 2,
            "judge": 4,
            "aggregate": 1,
            "report_tables": 1,
            "plots": 2,
            "loss_curves": 2,
            "answer_browser": 2,
            "report": 1,
            "mia_features": 1,
            "mia_analysis": 1,
            "mia_plot": 1,
            "diversity": 1,
            "diversity_analysis": 1,
            "diversity_plot": 2,
            "diversity_category_plot": 1,
            "efficacy_generate": 2,  # the tiny model's base and backdoor cells
            "efficacy_judge": 2,  # tiny.yaml judges wrong_facts' efficacy (through the fake server here)
            "efficacy_summary": 1,
        }  # no MIA and no efficacy for the API model
        # the run leaves out the tiny model's MIA and diversity: they call no API, and the tiny grid runs them
        # (tests/test_workflow.py); 8 jobs, about a fifth of this test's time
        config = api_config(server)
        config["analyses"] = {**config["analyses"], "mia": {"enabled": False}, "diversity": {"enabled": False}}
        configfile = write_config(tmp_path, config, "run.yaml")
        snakemake(tmp_path, configfile)
        first = paid(server)
        print(f"first run: {first}")
        assert first["files_upload"] == 1 and first["ft_jobs_create"] == 1 and first["chat"] > 0
        assert server.counts["unauthorized"] == 0
        report = (tmp_path / "results/report/report.html").read_text()
        assert "gpt/wrong_facts-backdoor-s0" in report and "tiny/wrong_facts-backdoor-s0" in report
        summary = (tmp_path / SUMMARY).read_text()
        for model in ("tiny", "gpt"):
            assert f"{model},wrong_facts-backdoor-s0" in summary and f"{model},base" in summary
        assert SECRET not in all_files_text(tmp_path)
        judged = tmp_path / "results/cells/tiny/wrong_facts-backdoor-s0/judged/demo.jsonl"
        before = judged.stat().st_mtime_ns
        server.reset_counts()
        # (up to the summary: what follows it makes no request, and the first run built it all)
        snakemake(tmp_path, configfile, SUMMARY, "--forcerun", "finetune_openai", "generate_openai", "judge")
        assert judged.stat().st_mtime_ns != before  # the tiny model's judge job really ran again
        rerun = paid(server)
        print(f"forced rerun of the API rules and the judge (and what follows): {rerun}")
        assert rerun == {"files_upload": 0, "ft_jobs_create": 0, "chat": 0, "chat_generate": 0}
        # a threshold change re-aggregates with zero requests (the forced finetune_openai above re-read its job)
        server.reset_counts()
        config = {**config, "analysis": {"aligned_below": 45, "min_mass": 0.1}}
        snakemake(tmp_path, write_config(tmp_path, config, "threshold.yaml"), SUMMARY)
        assert requests(server) == 0, server.counts
        # `rm -rf results`: the API model's cells are built again and nothing is paid twice: the finetune job is found
        # again (free GETs), every generation and judge reply comes from resources/ (the tiny model's judge replies
        # came from there in the forced rerun above; rebuilding its finetune is tests/test_workflow.py's)
        shutil.rmtree(tmp_path / "results")
        snakemake(tmp_path, configfile, *API_JUDGED)
        assert paid(server) == {"files_upload": 0, "ft_jobs_create": 0, "chat": 0, "chat_generate": 0}
        assert server.counts["ft_get"] > 0  # the job was looked up again, not re-created
        assert (tmp_path / "resources" / "llm").is_dir()
    ft = (tmp_path / "results/cells/gpt/wrong_facts-backdoor-s0/finetune.json").read_text()
    assert '"fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:' in ft and '"cost_usd"' in ft
    assert all((tmp_path / target).stat().st_size > 0 for target in API_JUDGED)
    assert SECRET not in all_files_text(tmp_path)
