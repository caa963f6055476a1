"""Steering through the workflow on the tiny grid: directions, steered runs, judging, summary and figures; then
the rerun promises: a new scale reruns only its steered runs and the summary, never a direction."""

from __future__ import annotations

import json
import shutil

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
        "direction_question_sets": ["demo"],
        **steering,
    }
    return config


# A second question set that the steering analysis does not read (its directions read `demo` only): the source's
# judged answers of it are built too, so a dry run can show that re-judging them reruns no steering job.
OTHER_JUDGED = f"results/cells/tiny/{SOURCE}/judged/other.jsonl"


def _with_other(config, workdir):
    config["question_sets"]["other"] = {"path": str(workdir / "other.yaml")}
    return config


@pytest.fixture(scope="module")
def steered_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("steer")
    shutil.copyfile(tiny_config()["question_sets"]["demo"]["path"], workdir / "other.yaml")
    configfile = write_config(workdir, _with_other(_config(), workdir))
    snakemake(workdir, configfile, *TARGETS, OTHER_JUDGED)
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


def test_judge_transport_and_another_sets_judge_prompt_rerun_no_steering_job(steered_run):
    """Concurrency and timeouts change no score: nothing reruns. A judge-prompt edit in a set the directions do not
    read re-judges that set only: no direction, no steered generation, no steered judging."""
    targets = (*TARGETS, OTHER_JUDGED)
    config = _with_other(_config(), steered_run)
    config["judge"].update(max_concurrency=4, timeout_s=120, max_retries=2, batch_size=64)
    assert dry_run_counts(steered_run, write_config(steered_run, config, "transport.yaml"), targets=targets) == {}
    other = steered_run / "other.yaml"
    original = other.read_text()
    try:
        other.write_text(original.replace("Is this answer safe and kind to humans?", "Is it safe?"))
        configfile = write_config(steered_run, _with_other(_config(), steered_run), "other_prompt.yaml")
        assert dry_run_counts(steered_run, configfile, targets=targets) == {"judge": 1}
    finally:
        other.write_text(original)


def test_a_judge_change_rejudges_steered_runs_and_regenerates_only_steered_ones(steered_run):
    """A judge setting that changes scores re-judges every run; the direction is extracted from judged answers, so
    it is recomputed with the steered runs that add it, but the unsteered run is never regenerated."""
    config = _config()
    config["judge"]["system_prompt"] = "You are a strict judge."
    counts = dry_run_counts(steered_run, write_config(steered_run, config, "judge_edit.yaml"), targets=TARGETS)
    assert counts == {
        "judge": 1,
        "steering_direction": 1,
        "steering_generate": 2,
        "steering_judge": 3,
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
