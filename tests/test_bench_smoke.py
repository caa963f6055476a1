"""Every benchmark in bench/ runs in its smoke mode (`--smoke`: the same code paths at tiny sizes) and prints its ratio
line, so that a config or API change that breaks a bench fails `make test` instead of being found at the next
measurement (issue 23: bench_plan had asserted the paper grid's model count and broke when a third model came).

The benches run as subprocesses, as a user runs them (`python bench/bench_x.py --smoke`), all started together on
the first test that needs one (each one thread: the 2-core CI box runs them in ~30 s instead of ~60 s one after the
other); each test then waits for its own and checks it. The options gpu_check.sh gives bench_finetune and
bench_generate (--json, --calibration; --vllm, which skips itself where vllm is missing) ride along, so the records
the GPU check writes are checked too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emgrid.throughput import load_calibration_file

REPO = Path(__file__).resolve().parents[1]
NUMBER = r"(\d+\.\d+)"  # a finite ratio: nan and inf do not match
# bench -> (extra options, its ratio line; {tmp} is the test's temporary folder)
BENCHES = {
    "bench_aggregate": ([], rf"ratio wall/target {NUMBER}\)"),
    "bench_coverage": (
        [],
        r"designs with coverage outside \[93 %, 97.5 %\] of 2: bootstrap \d+, logit_t \d+, "
        r"quasi_score_logit \d+, quasi_score \d+, wilson_t \d+, answers_at_zero \d+, within_z \d+",
    ),
    "bench_finetune": (
        ["--json", "{tmp}/finetune.jsonl", "--calibration", "{tmp}/finetune-cal.json"],
        rf"speed-up ours / pad-512 \(real tokens/s\): {NUMBER}x",
    ),
    "bench_generate": (
        ["--vllm", "--json", "{tmp}/generate.jsonl", "--calibration", "{tmp}/generate-cal.json"],
        rf"speed-up batched / one-at-a-time: {NUMBER}x",
    ),
    "bench_judge": ([], rf"speed-up {NUMBER}x, max \|diff\| {NUMBER}e"),
    "bench_mia": ([], rf"speed-up batched / one-at-a-time: {NUMBER}x"),
    "bench_plan": ([], rf"ratio on 2x \(\d+ jobs\): emgrid plan / snakemake -n: wall {NUMBER}x, CPU {NUMBER}x"),
}
TIMEOUT_S = 900  # per bench; a loaded machine can be slow, a hung bench must still end


def _env() -> dict:
    """This checkout's sources first (a venv may hold emgrid installed from another checkout), one thread each."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def started(request, tmp_path_factory):
    """{bench: (process, temporary folder, output file)} for every bench this session selected from this module, all started at
    once; stopped (by their own process ids) when the module ends, whatever the tests found."""
    names = sorted(
        {
            item.callspec.params["bench"]
            for item in request.session.items
            if item.module.__name__ == __name__ and hasattr(item, "callspec")
        }
    )
    procs = {}
    for name in names:
        tmp = tmp_path_factory.mktemp(name)
        extra = [arg.format(tmp=tmp) for arg in BENCHES[name][0]]
        cmd = [sys.executable, str(REPO / "bench" / f"{name}.py"), "--smoke", *extra]
        log = open(tmp / "output.txt", "w+")
        procs[name] = (subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT), tmp, log)
    yield procs
    for proc, _, log in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _finish(started, name: str) -> tuple[str, Path]:
    """Wait for one bench; its output and folder, or a failure that shows the output's end."""
    proc, tmp, log = started[name]
    try:
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = "killed after the timeout"
    log.seek(0)
    out = log.read()
    assert rc == 0, f"{name} --smoke: exit {rc}\n{out[-4000:]}"
    return out, tmp


@pytest.mark.slow
@pytest.mark.parametrize("bench", sorted(BENCHES))
def test_bench_smoke_runs_and_prints_its_ratio(started, bench):
    out, tmp = _finish(started, bench)
    pattern = BENCHES[bench][1]
    found = re.search(pattern, out)
    assert found, f"{bench} --smoke printed no line matching {pattern!r}:\n{out[-4000:]}"
    assert all(math.isfinite(float(x)) and float(x) >= 0 for x in found.groups())
    if bench in ("bench_finetune", "bench_generate"):
        stem = bench.removeprefix("bench_")
        record = json.loads((tmp / f"{stem}.jsonl").read_text().splitlines()[-1])
        assert record["device"] == "cpu" and record["model"] == "tiny"
        cal = load_calibration_file(tmp / f"{stem}-cal.json")
        assert cal.rate(stem, "cpu") is not None and cal.rate(stem, "cpu").tokens_per_s > 0
    if bench == "bench_generate":  # --steer is part of the smoke: the steered rate is recorded too
        assert load_calibration_file(tmp / "generate-cal.json").rate("steering_generate", "cpu") is not None


def _bench_module(name: str):
    """bench/<name>.py imported as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_bench_has_a_smoke_test():
    """A new bench/bench_*.py joins the smoke tests (else it can rot unseen)."""
    assert {p.stem for p in (REPO / "bench").glob("bench_*.py")} == set(BENCHES)


def test_smoke_defaults_yield_to_options_given():
    """--smoke replaces a bench's defaults only: an option on the command line keeps its value (the test above
    relies on it to add --json and --calibration)."""
    smoke = _bench_module("smoke")

    def parse(argv):
        ap = argparse.ArgumentParser()
        ap.add_argument("--steps", type=int, default=4)
        ap.add_argument("--model", default="smollm2")
        return smoke.parse_args(ap, argv, {"steps": 2, "model": "tiny"})

    assert vars(parse([])) == {"steps": 4, "model": "smollm2", "smoke": False}
    assert vars(parse(["--smoke"])) == {"steps": 2, "model": "tiny", "smoke": True}
    assert vars(parse(["--smoke", "--steps", "7"])) == {"steps": 7, "model": "tiny", "smoke": True}


def test_bench_coverage_simulates_the_designs_asked_for_and_says_which_misses_are_beyond_noise(capsys):
    """--design replaces the grid (a user's own design, or one near a bound run with more experiments); the summary
    counts the designs outside the band, and those outside it by more than two Monte Carlo standard errors."""
    bench = _bench_module("bench_coverage")
    assert bench.parse_design("3x20x10x0.5x0.05") == (3, 20, 10, 0.5, 0.05)
    for bad in ("3x20x10x0.5", "3x20x10x0.5x5", "0x8x5x0.3x0.1", "1x1x5x0.3x0.1", "axbxcxdxe"):
        with pytest.raises(argparse.ArgumentTypeError, match="SxQxAxSDxRATE|questions >= 2"):
            bench.parse_design(bad)
    assert (
        bench.main(
            [
                "--design",
                "1x8x5x0.3x0.10",
                "--design",
                "1x20x5x0.3x0.02",
                "--experiments",
                "40",
                "--methods",
                "wilson_t",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("    1")]
    assert [row[:5] for row in rows] == [["1", "8", "5", "0.3", "10.0%"], ["1", "20", "5", "0.3", "2.0%"]]
    assert "of 2: wilson_t" in out
    # 40 experiments: 2 Monte Carlo standard errors at 97.5 % are 4.9 points
    assert re.search(r"more than 2 Monte Carlo standard errors \(at 40 experiments: 2\.47% at 97\.5 %", out)
    assert bench.mc_se(0.975, 4000) == pytest.approx(0.00247, abs=1e-5)


def test_bench_coverage_alternatives_differ_from_the_primary_interval_only_where_they_say():
    """The two narrowings measured against the primary interval's coarse-count over-coverage (docs/statistics.md):
    `answers_at_zero` changes only the boundary rule (0 of 40 answers: Wilson's on 40 answers, 8.8 %, in place of
    Wilson's on 8 questions, 32.4 %); `within_z` only the quantile of the within-question part (equal where the
    answers vary only between questions, strictly inside where they vary within)."""
    bench = _bench_module("bench_coverage")
    zero = np.zeros((1, 8, 5))
    assert bench.quasi_score(zero)[1] == pytest.approx(0.3244, abs=1e-4)
    assert bench.answers_at_zero(zero)[1] == pytest.approx(0.0876, abs=1e-4)
    assert bench.within_z(zero) == bench.quasi_score(zero)
    mixed = np.zeros((1, 8, 5))
    mixed[0, :3, :2] = 1  # 2 of 5 answers on three questions: variation within questions
    assert bench.answers_at_zero(mixed) == bench.quasi_score(mixed)
    (lo_z, hi_z), (lo, hi) = bench.within_z(mixed), bench.quasi_score(mixed)
    assert lo < lo_z and hi_z < hi
    between = np.zeros((1, 8, 5))
    between[0, :2] = 1  # two questions all misaligned, six none: no variation within any question
    assert bench.within_z(between) == pytest.approx(bench.quasi_score(between), abs=1e-12)


def test_bench_coverage_two_point_family_concentrates_the_behaviour_and_shows_what_the_boundary_rule_buys():
    """--family two_point: each question carries the behaviour or (almost) not; the estimand is the population's
    rate. Under it, Wilson's on every answer at 0 of n (`answers_at_zero`) misses every sample of 8 questions that
    holds no carrier (one in ten), where the primary interval's rule on the clusters covers it."""
    bench = _bench_module("bench_coverage")
    rng = np.random.default_rng(3)
    design = (1, 8, 5, 1.0, 0.10)
    cells = [bench.draw(design, bench.mu_for(0.10, 1.0), rng, "two_point") for _ in range(2000)]
    theta = cells[0][1]
    assert theta == pytest.approx(0.25 * 0.4 + 0.75 * 0.002)
    assert np.mean([y.mean() for y, _ in cells]) == pytest.approx(theta, abs=0.005)
    assert 0.06 < np.mean([y.sum() == 0 for y, _ in cells]) < 0.16  # 0.75^8 = 10 % hold no carrier (and no answer)
    res = bench.simulate(design, 300, ["quasi_score", "answers_at_zero"], np.random.default_rng(0), family="two_point")
    assert res["quasi_score"][0] - res["answers_at_zero"][0] > 0.05


def test_bench_coverage_zero_bounds_show_that_only_independent_answers_bring_a_zero_cell_under_the_rate(capsys):
    """--zero-bounds: at 1 x 8 x 5, sd 1.0, 10 % (one of the two designs above 97.5 %) a cell reads 0 of 40 about
    3 % of the time; Wilson's on n over the true design effect (about 1.35) still lies above the rate, so only the
    rule that takes the 40 answers as independent (8.8 %) can miss there. With sd 0.3 the design effect is about 1."""
    bench = _bench_module("bench_coverage")
    rng = np.random.default_rng(5)
    coarse = bench.zero_bounds((1, 8, 5, 1.0, 0.10), 4000, rng)
    assert coarse["rate"] == pytest.approx(0.10)
    assert 0.015 < coarse["zero"] < 0.05
    assert 1.2 < coarse["deff"] < 1.5
    assert coarse["questions"] == pytest.approx(0.3244, abs=1e-4)
    assert coarse["design_effect"] > 0.10 > coarse["answers"] == pytest.approx(0.0876, abs=1e-4)
    assert 0.9 < bench.zero_bounds((1, 8, 5, 0.3, 0.10), 4000, rng)["deff"] < 1.15
    assert bench.main(["--zero-bounds", "--design", "1x8x5x1.0x0.10", "--experiments", "500"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"\n    1   8   5  1\.0 10\.0% +(\S+)%.*\( 0\.0%\).*\( 0\.0%\) +8\.8% \( *(\S+)%\)\n", out)
    assert row and float(row[1]) == float(row[2]) > 0  # the cells at 0 of 40 are the independent rule's misses
    assert "of 1: questions 0, design_effect 0, answers 1" in out
