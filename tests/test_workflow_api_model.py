"""The tiny grid with an API model (source openai, on the local fake server) beside the tiny HF model: finetune ->
generate -> judge -> aggregate -> report end to end, a forced rerun of the API rules costs nothing, the key is in no
file of the run."""

from __future__ import annotations

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.judge_helpers import all_files_text
from tests.support.workflow_helpers import dry_run_counts, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

SECRET = "sk-emgrid-api-model-DO-NOT-LEAK-0123456789"


def paid(server) -> dict:
    counts = {k: server.counts[k] for k in ("files_upload", "ft_jobs_create", "chat")}
    counts["chat_generate"] = sum(v for k, v in server.counts.items() if k.startswith("chat:") and "2024-07-18" in k)
    return counts


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


def test_api_model_beside_an_hf_model(tmp_path, monkeypatch):
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
        snakemake(tmp_path, configfile)
        first = paid(server)
        print(f"first run: {first}")
        assert first["files_upload"] == 1 and first["ft_jobs_create"] == 1 and first["chat"] > 0
        assert server.counts["unauthorized"] == 0

        server.reset_counts()
        snakemake(tmp_path, configfile, "--forcerun", "finetune_openai", "generate_openai")
        rerun = paid(server)
        print(f"forced rerun of the API rules (and the judge/aggregate/report after them): {rerun}")
        assert rerun == {"files_upload": 0, "ft_jobs_create": 0, "chat": 0, "chat_generate": 0}

    ft = (tmp_path / "results/cells/gpt/wrong_facts-backdoor-s0/finetune.json").read_text()
    assert '"fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:' in ft and '"cost_usd"' in ft
    summary = (tmp_path / "results/summary/summary.csv").read_text()
    for model in ("tiny", "gpt"):
        assert f"{model},wrong_facts-backdoor-s0" in summary and f"{model},base" in summary
    report = (tmp_path / "results/report/report.html").read_text()
    assert "gpt/wrong_facts-backdoor-s0" in report and "tiny/wrong_facts-backdoor-s0" in report
    assert SECRET not in all_files_text(tmp_path)
