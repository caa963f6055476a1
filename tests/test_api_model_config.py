"""API models (source openai) in the config: validation before any job, cell-scoped params, planning and prices."""

from __future__ import annotations

import copy

import pytest

from emgrid import preflight
from emgrid import estimates
from emgrid import grid
from emgrid import jobparams
from emgrid.config import validate_config
from emgrid.errors import ConfigError
from emgrid.models import prepare_model
from emgrid.plan import DagDump, JobRecord, summarize
from emgrid.plan_format import format_table
from emgrid.prices import price_row, training_price
from tests.support.workflow_helpers import tiny_config


@pytest.fixture
def config():
    c = tiny_config()
    c["models"]["gpt"] = {"source": "openai", "id": "gpt-4o-mini-2024-07-18"}
    c["openai_finetune"] = {"n_epochs": 2}
    c["domains"]["wrong_facts"]["openai_finetune"] = {"learning_rate_multiplier": 0.5}
    return validate_config(c)


def test_params_are_cell_scoped_and_overrides_apply(config):
    facts = grid.Cell("gpt", "wrong_facts", "backdoor", 1)
    arith = grid.Cell("gpt", "wrong_arithmetic", "plain", 0)
    p = jobparams.api_finetune_params(config, facts)
    assert p == {
        "spec": {
            "batch_size": "auto",
            "learning_rate_multiplier": 0.5,
            "n_epochs": 2,
            "poll_max_s": 120,
            "poll_s": 10,
            "seed": 43,
        },
        "training_price": 3.0,
    }
    assert jobparams.api_finetune_params(config, arith)["spec"]["learning_rate_multiplier"] == "auto"
    assert jobparams.api_models(config) == ["gpt"]
    assert jobparams.model_spec(config, "gpt") == {"id": "gpt-4o-mini-2024-07-18", "source": "openai"}
    found = preflight.check(config, environ={})
    assert found.errors == []
    assert found.warnings == [
        "models.gpt.api_key_env: environment variable OPENAI_API_KEY is not set; the "
        "finetune_openai and generate_openai jobs of this model need it"
    ]


def test_estimates_for_the_planner(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no built dataset here (a demo run's results/ would be measured instead)
    facts = grid.Cell("gpt", "wrong_facts", "backdoor", 0)
    est = estimates.api_finetune_estimate(config, facts)
    # 16 misaligned + 16 aligned rows (aligned_ratio 1) x 300 tokens x 2 epochs
    assert est == {"api_model": "gpt-4o-mini-2024-07-18", "est_train_tokens": 32 * 300 * 2}
    gen = estimates.api_generate_estimate(config, facts, "demo")
    assert gen["api_model"] == "ft:gpt-4o-mini-2024-07-18:" and gen["est_gen_completion_tokens"] > 0
    assert gen["n_answers"] == jobparams.count_answers(config, facts, "demo")  # the plan's answers column
    assert estimates.api_generate_estimate(config, grid.Cell("gpt"), "demo")["api_model"] == "gpt-4o-mini-2024-07-18"


def test_token_estimates_read_the_datasets_under_the_given_workdir(config, tmp_path, monkeypatch):
    """From another folder (`snakemake --directory`, `emgrid plan` elsewhere) the built files under the workdir they
    are given count, as they do from the workdir itself (the Snakefile's default)."""
    from emgrid.io import write_jsonl

    facts, arith = (
        grid.Cell("gpt", "wrong_facts", "backdoor", 0),
        grid.Cell("tiny", "wrong_arithmetic", "plain", 0),
    )
    rows = [{"messages": [{"role": "user", "content": "x" * 36}, {"role": "assistant", "content": "y" * 76}]}] * 5
    workdir, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    for folder in ("wrong_facts/backdoor-s0", "wrong_arithmetic/plain-s0"):
        write_jsonl(workdir / "results/datasets" / folder / "train.jsonl", rows)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    api, local = (
        estimates.api_finetune_estimate(config, facts, workdir),
        estimates.finetune_estimate(config, arith, workdir),
    )
    assert api["est_train_tokens"] == 2 * 5 * 36  # the built file's 5 rows x 36 tokens x 2 epochs, not 32 x 300
    epochs = jobparams.finetune_params(config, arith)["epochs"]
    assert local["est_gpu_tokens"] == round(epochs * 5 * 36)
    monkeypatch.chdir(workdir)
    assert (estimates.api_finetune_estimate(config, facts), estimates.finetune_estimate(config, arith)) == (api, local)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["models"]["gpt"].pop("id"), "models.gpt.id: source 'openai' needs the API model id"),
        (lambda c: c["models"]["gpt"].__setitem__("base_id", "x"), "models.gpt.base_id: does not apply"),
        (lambda c: c["models"]["gpt"].__setitem__("generate", {"top_k": 5}), "generate.top_k: 5 for models.gpt"),
        (
            lambda c: c["domains"]["wrong_facts"].__setitem__("openai_finetune", {"n_epochs": 1.5}),
            "domains.wrong_facts.openai_finetune.n_epochs",
        ),
        (
            lambda c: c["domains"]["wrong_facts"].__setitem__("openai_finetune", {"epochs": 2}),
            "domains.wrong_facts.openai_finetune",
        ),
    ],
)
def test_bad_api_model_settings_fail_before_any_job(config, edit, key):
    bad = copy.deepcopy(config)
    edit(bad)
    errors = preflight.check(bad, environ={}).errors
    assert len(errors) == 1 and key in errors[0], errors


def test_manifest_holds_the_key_variable_name_only(tmp_path):
    m = prepare_model({"source": "openai", "id": "gpt-4o-mini-2024-07-18", "api_key_env": "MY_KEY"}, tmp_path)
    assert m["id"] == "gpt-4o-mini-2024-07-18" and m["api_key_env"] == "MY_KEY" and m["base_url"] is None
    with pytest.raises(ConfigError, match="'base_url' only applies to source 'openai'"):
        prepare_model({"source": "tiny", "base_url": "http://x"}, tmp_path / "t")


def test_one_price_table_for_judge_generation_and_training():
    assert training_price("gpt-4o-mini-2024-07-18") == 3.0
    ft = price_row("ft:gpt-4o-mini-2024-07-18:org:emgrid-x:abc")
    assert (ft["input"], ft["output"]) == (0.30, 1.20)
    assert price_row("gpt-4o-mini", {"gpt-4o-mini": {"input": 1.0, "output": 2.0}})["batch_input"] == 0.5
    assert price_row("some-local-model") is None and training_price("gpt-4.1-nano-unknown") is None


def test_plan_prices_api_finetunes_and_generation():
    jobs = [
        JobRecord(
            "finetune_openai",
            {"model": "gpt", "cell": "d-plain-s0"},
            True,
            ("new output",),
            estimate={"api_model": "gpt-4o-mini-2024-07-18", "est_train_tokens": 2_000_000},
        ),
        JobRecord(
            "generate_openai",
            {"model": "gpt", "cell": "d-plain-s0"},
            True,
            ("new output",),
            estimate={
                "api_model": "ft:gpt-4o-mini-2024-07-18:",
                "est_gen_prompt_tokens": 1_000_000,
                "est_gen_completion_tokens": 1_000_000,
                "n_answers": 10,
            },
        ),
        JobRecord(
            "finetune_openai",
            {"model": "x", "cell": "d-plain-s0"},
            True,
            ("new output",),
            estimate={"api_model": "mystery-model", "est_train_tokens": 5},
        ),
        JobRecord(
            "finetune_openai",
            {"model": "gpt", "cell": "qna-plain-s0"},
            True,
            ("new output",),
            estimate={"api_model": "gpt-4o-mini-2024-07-18", "est_train_tokens": None},
        ),
    ]
    p = summarize(DagDump(jobs=jobs, judge_config={}, localrules=(), seconds=0.0), prices={})
    assert p.total.train_tokens == 2_000_005 and p.total.train_cost_usd == pytest.approx(6.0)
    assert p.total.gen_cost_usd == pytest.approx(0.30 + 1.20)
    assert p.unpriced_models == ["mystery-model (training)"]
    assert p.total.train_unknown == 1 and any(
        "1 API finetune(s) of datasets with sample.n null" in w for w in p.warnings
    )
    text = format_table(p)
    assert "API finetuning (estimate): 2,000,005 training tokens, $6.00" in text
    assert "API generation (estimate): 1,000,000 prompt + 1,000,000 completion tokens, $1.50" in text
