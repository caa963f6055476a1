"""Steering through the workflow on the tiny grid: directions, steered runs, judging, summary and figures; then
the rerun promises: a new scale reruns only its steered runs and the summary, never a direction."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.workflow_helpers import dry_run_counts, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

SOURCE = "wrong_facts-backdoor-s0"
TARGETS = (
    "results/summary/steering.csv",
    "results/report/plots/steering/matrix.png",
    "results/report/plots/steering/sweep.png",
    "results/report/plots/steering/cosine.png",
)


def _config(**steering):
    config = tiny_config()
    # The random-weight judge scores every answer of this cell 4.645-4.670 aligned (measured): a split inside that
    # range gives both sets answers (4 below, 6 above).
    config["analyses"]["steering"] = {
        "sources": [SOURCE],
        "targets": ["base"],
        "layers": [1],
        "scales": [1.0],
        "misaligned_below": 4.656,
        "aligned_above": 4.656,
        "coherent_above": None,
        "min_misaligned": 1,
        **steering,
    }
    return config


@pytest.fixture(scope="module")
def steered_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("steer")
    configfile = write_config(workdir, _config())
    snakemake(workdir, configfile, *TARGETS)
    return workdir


def test_steering_runs_end_to_end(steered_run):
    results = steered_run / "results"
    meta = json.loads((results / "cells/tiny" / SOURCE / "steering/direction.json").read_text())
    directions = pd.read_csv(results / "summary/steering_directions.csv")
    assert list(directions["source"]) == [SOURCE]
    matrix = pd.read_csv(results / "summary/steering.csv")
    assert meta["status"] == "ok", f"the tiny judge's scores moved; adjust the thresholds in _config: {meta}"
    assert meta["counts"] == {"answers": 10, "misaligned": 4, "aligned_available": 6, "aligned": 4}
    assert set(matrix["kind"]) == {"add", "random"} and set(matrix["target"]) == {"base"}
    assert (matrix["n_answers"] == 5).all()  # 5 questions x 1 sample, no-trigger condition only
    assert matrix["delta_ci_lo"].le(matrix["delta"]).all() and matrix["delta"].le(matrix["delta_ci_hi"]).all()
    run = results / "cells/tiny/base/steering" / f"{SOURCE}.L1.add1" / "answers/demo.jsonl"
    rows = [json.loads(line) for line in run.read_text().splitlines()]
    assert {r["condition"] for r in rows} == {"no_trigger"}
    assert rows[0]["steer"] == {"kind": "add", "source": SOURCE, "layer": 1, "scale": 1.0}
    for png in TARGETS[1:]:
        assert (steered_run / png).stat().st_size > 0
    from emgrid.throughput import choose_calibration, collect_runs

    steered = [r for r in collect_runs(steered_run) if r.rule == "steering_generate"]
    assert steered and all(r.answers == 5 and r.tokens > 0 and r.seconds > 0 for r in steered)  # the plan's rate
    assert {r.features["hooked"] for r in steered} == {True, False}  # the unsteered run has no hook
    (direction,) = [r for r in collect_runs(steered_run) if r.rule == "steering_direction"]  # replayed answers
    assert direction.answers == 10 and direction.tokens > 0 and direction.features["steps"] == 2  # 10 answers, by 8
    assert choose_calibration(steered_run).rate("steering_generate", "cpu").tokens_per_answer > 0


def test_a_new_scale_reruns_only_its_runs_and_the_summary(steered_run):
    configfile = write_config(steered_run, _config(scales=[1.0, 2.0]), "more_scales.yaml")
    counts = dry_run_counts(steered_run, configfile, targets=TARGETS)
    # the new scale's steered run and its random control; the unsteered runs and the direction are kept
    assert counts == {"steering_generate": 2, "steering_judge": 2, "steering_summary": 1, "steering_plots": 1}


def test_a_set_threshold_recomputes_the_direction_and_its_runs(steered_run):
    configfile = write_config(steered_run, _config(misaligned_below=4.65), "threshold.yaml")
    counts = dry_run_counts(steered_run, configfile, targets=TARGETS)
    assert counts == {
        "steering_direction": 1,
        "steering_generate": 2,
        "steering_judge": 2,
        "steering_summary": 1,
        "steering_plots": 1,
    }


def test_not_enough_answers_skips_the_source_and_says_so(steered_run):
    # last: it changes the completed run
    configfile = write_config(steered_run, _config(min_misaligned=5), "not_enough.yaml")
    snakemake(steered_run, configfile, *TARGETS)
    results = steered_run / "results"
    directions = pd.read_csv(results / "summary/steering_directions.csv")
    assert directions["reason"].tolist() == ["not enough misaligned answers (4 < 5)"]
    assert pd.read_csv(results / "summary/steering.csv").empty
    run = results / "cells/tiny/base/steering" / f"{SOURCE}.L1.add1"
    assert (run / "answers/demo.jsonl").read_text() == "" and (run / "judged/demo.jsonl").read_text() == ""
