"""What reruns a finished job, without running the workflow: content-based rerun triggers on every entry point, one
code version per rule, the start-up checks of deleted results, model caches and stale reports (issue 22). The
workflow tests (tests/test_workflow.py) count the jobs these give on a completed run."""

from __future__ import annotations

import re

import pytest
import yaml

from emgrid import gridspec, layout, preflight
from emgrid.missing_results import format_missing_results, missing_results
from emgrid.models import prepare_model, restore_manifest
from tests.support.workflow_helpers import REPO, tiny_config

PROFILES = [
    "profiles/default/config.yaml",  # the one Snakemake reads by itself (plain snakemake, emgrid plan, the tests)
    "workflow/profiles/default/config.yaml",  # the Makefile's
    "workflow/profiles/slurm/config.yaml",
    "workflow/profiles/slurm-ci/config.yaml",
]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_reruns_on_content_not_timestamps(profile):
    settings = yaml.safe_load((REPO / profile).read_text())
    assert settings["rerun-triggers"] == list(gridspec.RERUN_TRIGGERS) and "code" not in settings["rerun-triggers"]
    assert settings["max-checksum-file-size"] == gridspec.MAX_CHECKSUM_FILE_SIZE


def test_every_rule_carries_its_code_version():
    """A rule without the entry could never be rerun by a code version bump."""
    rules = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", smk.read_text())[1:]:
            rules[re.match(r"rule (\w+):", block)[1]] = block
    assert len(rules) > 25
    for name, block in rules.items():
        assert f'**gridspec.code_version("{name}")' in block, name


def test_code_version_is_no_param_until_bumped(monkeypatch):
    """Version 0 adds nothing, so introducing the mechanism changed no job's params (no rerun of existing runs)."""
    assert gridspec.code_version("finetune") == {}
    monkeypatch.setitem(gridspec.CODE_VERSIONS, "finetune", 2)
    assert gridspec.code_version("finetune") == {"code_version": 2} and gridspec.code_version("generate") == {}


def test_missing_results_are_the_ones_under_existing_results():
    config = tiny_config()
    assert preflight.check(config).errors == []
    cells = "results/cells/tiny"
    made = {
        f"{cells}/base/judged/demo.jsonl",  # its answers are gone
        f"{cells}/wrong_facts-plain-s0/answers/demo.jsonl",  # its adapter is gone
        f"{cells}/wrong_facts-plain-s0/finetune.json",  # its train.jsonl is gone
        "results/summary/summary.csv",  # only base's judged rows exist: every other judged file is missing
        f"{cells}/wrong_arithmetic-plain-s0/answers/demo.jsonl",
    }
    missing = dict(missing_results(config, exists=made.__contains__))
    assert missing[f"{cells}/base/answers/demo.jsonl"] == f"{cells}/base/judged/demo.jsonl"
    assert missing[f"{cells}/wrong_facts-plain-s0/adapter"] == f"{cells}/wrong_facts-plain-s0/answers/demo.jsonl"
    assert missing["results/datasets/wrong_facts/plain-s0/train.jsonl"] == f"{cells}/wrong_facts-plain-s0/finetune.json"
    assert missing[f"{cells}/wrong_facts-backdoor-s0/judged/demo.jsonl"] == "results/summary/summary.csv"
    assert f"{cells}/wrong_arithmetic-plain-s0/answers/demo.jsonl" not in missing  # it exists
    assert f"{cells}/wrong_facts-backdoor-s0/answers/demo.jsonl" not in missing  # nothing made from it exists
    text = format_missing_results(sorted(missing.items()))
    assert f"--forcerun {' '.join(sorted(missing))}\n" in text
    assert missing_results(config, exists=lambda p: False) == []  # a fresh run misses nothing


def test_restore_manifest_writes_the_same_bytes_and_rebuilds_the_same_weights(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    spec, out, cache = {"source": "tiny", "seed": 1, "layers": 1}, Path("results/models/tiny"), Path("resources/models")
    m = prepare_model(spec, out, cache_dir=cache)
    manifest, folder = out / "manifest.json", cache / f"tiny-{m['weights_key']}"
    before = manifest.read_bytes()
    assert restore_manifest(spec, out, cache) is None  # all there: nothing to do
    shutil.rmtree("results")
    assert "written again" in restore_manifest(spec, out, cache) and manifest.read_bytes() == before
    shutil.rmtree("resources")
    assert "rebuilt" in restore_manifest(spec, out, cache) and (folder / "model.safetensors").is_file()
    assert manifest.read_bytes() == before


def test_drop_report_removes_the_page_and_the_archive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page, plot = tmp_path / layout.REPORT_PAGE, tmp_path / "results/report/plots/x.png"
    plot.parent.mkdir(parents=True)
    for path in (page, plot, tmp_path / layout.REPORT_ZIP):
        path.write_text("old")
    assert layout.drop_report() == [layout.REPORT_PAGE, layout.REPORT_ZIP]
    assert plot.exists() and not page.exists()  # figures stay: jobs of the same run may read them
    assert layout.drop_report() == [] and plot.exists()
