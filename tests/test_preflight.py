"""The whole-config check: every spec object of every cell built before the first job, all problems reported at
once with their key paths; what can still be fixed before a job needs it is a warning ("before you run")."""

from __future__ import annotations

import pytest

from emgrid import preflight
from emgrid.errors import ConfigError
from tests.support.workflow_helpers import REPO, snakemake, tiny_config, write_config

NO_ENV: dict[str, str] = {}


def _check(config, environ=NO_ENV):
    return preflight.check(config, environ=environ)


def _one_error(config) -> str:
    found = _check(config)
    assert len(found.errors) == 1, found.errors
    return found.errors[0]


def test_tiny_config_is_clean():
    found = _check(tiny_config())
    assert found.errors == [] and found.warnings == []


def test_openai_judge_with_response_prefix_is_an_error():
    config = tiny_config()
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini", "response_prefix": "Score: "}
    assert "judge.response_prefix" in _one_error(config)


def test_whitespace_only_trigger_is_an_error():
    config = tiny_config()
    config["backdoor"] = {"trigger": "   "}
    msg = _one_error(config)
    assert msg.startswith("backdoor.trigger:") and "'   '" in msg
    config = tiny_config()
    config["domains"]["wrong_facts"]["backdoor"] = {"trigger": "\t"}
    assert _one_error(config).startswith("domains.wrong_facts.backdoor.trigger:")


def test_hf_model_without_id_names_the_model():
    config = tiny_config()
    config["models"]["big"] = {"source": "hf"}
    msg = _one_error(config)
    assert msg.startswith("models.big.id:") and "needs key 'id'" in msg


def test_missing_api_key_is_a_warning_naming_the_variable():
    config = tiny_config()
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini", "api_key_env": "EMGRID_TEST_KEY"}
    found = _check(config)
    assert found.errors == []
    assert [w for w in found.warnings if w.startswith("judge.api_key_env:") and "EMGRID_TEST_KEY" in w]
    assert not _check(config, environ={"EMGRID_TEST_KEY": "sk-x"}).warnings


def test_missing_local_source_file_is_a_warning(tmp_path):
    config = tiny_config()
    missing = tmp_path / "insecure.jsonl"
    config["domains"]["wrong_facts"]["recipe"]["source"] = {"kind": "jsonl", "path": str(missing)}
    found = _check(config)
    assert found.errors == []
    assert found.warnings == [
        f"domains.wrong_facts.recipe.source.path: local source file {missing} does not exist (see docs/datasets.md)"
    ]
    missing.write_text("")
    assert _check(config).warnings == []


def test_missing_question_file_is_a_warning_and_planned_as_empty(tmp_path):
    from emgrid import estimates
    from emgrid import grid
    from emgrid import jobparams

    config = tiny_config()
    missing = tmp_path / "first_plot_questions.yaml"
    config["question_sets"]["demo"]["path"] = str(missing)
    found = _check(config)
    assert found.errors == []
    assert [w for w in found.warnings if w.startswith("question_sets.demo.path:") and str(missing) in w]
    cell = grid.cells(config)[0]
    assert jobparams.count_answers(config, cell, "demo") == 0
    assert estimates.judge_estimate(config, cell, "demo")["n_requests"] == 0


def test_hub_dataset_and_llm_steps_are_listed_as_needing_the_network():
    from emgrid.config import load_config

    config = load_config(REPO / "config" / "config.yaml")
    found = preflight.check(config, resolve_path=lambda p: str(REPO / p), environ=NO_ENV)
    assert found.errors == []
    text = "\n".join(found.warnings)
    assert "domains.incorrect_math.recipe.source.path: Hugging Face dataset 'openai/gsm8k'" in text
    assert "domains.insecure_code.recipe.source.path: local source file" in text
    assert "llm.api_key_env" in text and "judge.api_key_env" in text
    assert any("synthetic calls the `llm` API" in w for w in found.warnings)


def test_every_problem_is_reported_at_once():
    config = tiny_config()
    config["finetune"]["r"] = "eight"  # schema
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini", "response_prefix": "Score: "}
    config["backdoor"] = {"trigger": " "}
    config["models"]["big"] = {"source": "hf"}
    config["domains"]["wrong_facts"]["recipe"]["sampel"] = {"n": 3}
    config["domains"]["wrong_arithmetic"]["finetune"] = {"epochs": 0}  # schema, in an override
    found = _check(config)
    keys = [
        "finetune.r",
        "judge.response_prefix",
        "backdoor.trigger",
        "models.big.id",
        "domains.wrong_facts.recipe.sampel",
        "domains.wrong_arithmetic.finetune.epochs",
    ]
    for key in keys:
        assert sum(key in e for e in found.errors) == 1, (key, found.errors)
    assert len(found.errors) == len(keys)
    with pytest.raises(ConfigError, match="6 problem"):
        found.raise_errors()


def test_a_bad_global_setting_is_listed_once_not_per_cell():
    config = tiny_config()
    config["seeds"] = [0, 1, 2]
    config["finetune"]["max_steps"] = 0
    found = _check(config)
    assert len(found.errors) == 1 and "finetune.max_steps" in found.errors[0]


def test_a_bad_checkpoint_frequency_in_a_model_override_is_found():
    config = tiny_config()
    config["models"]["tiny"]["finetune"] = {"checkpoint_every": "often"}
    found = _check(config)
    assert (
        len(found.errors) == 1 and "finetune.checkpoint_every" in found.errors[0] and "models.tiny" in found.errors[0]
    )


@pytest.mark.slow  # a Snakemake dry run
def test_cluster_doc_config_override_works(tmp_path):
    """docs/cluster.md's `--config` example must be one snakemake accepts (it merges nested mappings)."""
    import shlex

    doc = (REPO / "docs" / "cluster.md").read_text()
    line = next(l for l in doc.splitlines() if l.startswith("emgrid plan --config"))
    args = shlex.split(line.split("#")[0])[2:]
    config = tiny_config()
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini", "system_prompt": "Be strict."}
    proc = snakemake(tmp_path, write_config(tmp_path, config), "-n", *args, "--printshellcmds", check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "judge.model" not in proc.stdout + proc.stderr


@pytest.mark.slow  # a Snakemake dry run
def test_snakemake_dry_run_prints_five_mistakes_and_starts_nothing(tmp_path):
    config = tiny_config()
    config["finetune"]["lr"] = "fast"
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini", "response_prefix": "Score: "}
    config["backdoor"] = {"trigger": "  "}
    config["models"]["big"] = {"source": "hf"}
    config["question_sets"]["bad-name"] = dict(config["question_sets"]["demo"])
    proc = snakemake(tmp_path, write_config(tmp_path, config), "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for key in ("finetune.lr", "judge.response_prefix", "backdoor.trigger", "models.big.id", "question_sets.bad-name"):
        assert key in out, (key, out[-3000:])
    assert "5 problem(s)" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake" / "log").exists()


@pytest.mark.slow  # Snakemake reads the DAG
def test_plan_lists_before_you_run(tmp_path):
    from emgrid.plan import plan
    from emgrid.plan_format import format_table

    config = tiny_config()
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini", "api_key_env": "EMGRID_UNSET_KEY_VAR"}
    config["domains"]["wrong_facts"]["recipe"]["source"] = {"kind": "jsonl", "path": "data/missing.jsonl"}
    cfg = write_config(tmp_path, config)
    p = plan(
        ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(cfg)], cwd=tmp_path
    )
    text = format_table(p)
    before = text[text.index("before you run:") :]
    assert "judge.api_key_env: environment variable EMGRID_UNSET_KEY_VAR is not set" in before
    assert "domains.wrong_facts.recipe.source.path: local source file data/missing.jsonl" in before


@pytest.mark.parametrize(
    "mutate, key",
    [
        (
            lambda c: c["domains"]["wrong_facts"].__setitem__("efficacy", {"scorer": "judge"}),
            "domains.wrong_facts.efficacy.judge_prompt",
        ),
        (
            lambda c: c["domains"]["wrong_facts"].__setitem__("efficacy", {"scorer": "exact", "exact": "regex"}),
            "domains.wrong_facts.efficacy.exact",
        ),
        (lambda c: c.__setitem__("efficacy", {"generate": {"max_new_tokens": "long"}}), "efficacy.generate"),
        (
            lambda c: (
                c["domains"]["wrong_facts"]["recipe"].__setitem__("transform", [{"kind": "evil_reframe"}])
                or c["domains"]["wrong_facts"].pop("efficacy")
            ),
            "domains.wrong_facts.efficacy.judge_prompt",
        ),
    ],
)
def test_bad_efficacy_settings_fail_before_any_job(mutate, key):
    config = tiny_config()
    mutate(config)
    assert key in _one_error(config)


def test_efficacy_off_needs_no_judge_prompt():
    config = tiny_config()
    config["domains"]["wrong_facts"]["recipe"]["transform"] = [{"kind": "evil_reframe"}]
    config["domains"]["wrong_facts"].pop("efficacy")
    config["efficacy"] = {"enabled": False}
    assert _check(config).errors == []


def test_preflight_uses_only_public_functions_of_other_modules():
    import ast

    tree = ast.parse((REPO / "src/emgrid/preflight.py").read_text())
    private = [
        f"{node.module}.{a.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("emgrid")
        for a in node.names
        if a.name.startswith("_")
    ]
    assert not private, f"preflight imports private names: {private}"
