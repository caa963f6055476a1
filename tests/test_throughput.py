"""The GPU-hours model: job logs -> fitted tokens/s per rule and device -> `emgrid plan`'s estimate beside the bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emgrid import throughput
from emgrid.plan import DagDump, JobRecord, summarize
from emgrid.plan_format import format_table, plan_to_json
from emgrid.throughput import MARK, Calibration, choose_calibration, collect_runs, fit, load_calibration_file

H200 = "NVIDIA H200"


def _log(root: Path, rel: str, **rec) -> None:
    path = root / "results" / "logs" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("loading model\n" + MARK + json.dumps(rec) + "\nsaved\n")


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """Fake finished jobs: finetunes 50,000 tok in 100 s and 150,000 in 300 s on an H200 (500 tok/s); generate jobs
    30,000 tok / 100 answers in 60 s and 60,000 / 200 in 90 s (600 tok/s, 300 tok/answer); one CPU finetune; one log
    from before the throughput line (ignored)."""
    _log(tmp_path, "finetune/m/d1-plain-s0.log", rule="finetune", seconds=100, tokens=50_000, device=H200)
    _log(tmp_path, "finetune/m/d2-plain-s0.log", rule="finetune", seconds=300, tokens=150_000, device=H200)
    _log(tmp_path, "finetune/m/d3-plain-s0.log", rule="finetune", seconds=1000, tokens=10_000, device="cpu")
    _log(tmp_path, "generate/m/base/main.log", rule="generate", seconds=60, tokens=30_000, answers=100, device=H200)
    _log(
        tmp_path,
        "generate/m/d1-plain-s0/main.log",
        rule="generate",
        seconds=90,
        tokens=60_000,
        answers=200,
        device=H200,
    )
    old = tmp_path / "results/logs/generate/m/d2-plain-s0/main.log"
    old.parent.mkdir(parents=True)
    old.write_text("a log of a job run before throughput was recorded\n")
    return tmp_path


def test_fit_from_recorded_logs(recorded):
    runs = collect_runs(recorded)
    assert len(runs) == 5
    cal = fit(runs, "recorded")
    ft, gen = cal.rate("finetune", H200), cal.rate("generate", H200)
    assert ft.tokens_per_s == pytest.approx(500.0) and ft.runs == 2 and ft.tokens_per_answer is None
    assert gen.tokens_per_s == pytest.approx(600.0) and gen.tokens_per_answer == pytest.approx(300.0)
    assert cal.rate("finetune", "cpu").tokens_per_s == pytest.approx(10.0)
    assert cal.devices() == [H200]  # GPU types only: a CPU rate never estimates a GPU job
    src = choose_calibration(recorded).source
    assert src.startswith("5 recorded run(s) in results/logs (NVIDIA H200, cpu); otherwise gpu_calibration.json")


def _job(rule: str, estimate: dict, runtime: int, gpus: int = 1) -> JobRecord:
    return JobRecord(rule, {}, True, ("new output",), estimate=estimate, resources={"gpu": gpus, "runtime": runtime})


def test_plan_prints_estimate_beside_upper_bound(recorded):
    # finetune: 1.8M tokens / 500 tok/s = 3600 s = 1 h (bound 4 h); 2 GPUs: 2 h (bound 8 h)
    # generate: 600 answers x 300 tok / 600 tok/s = 300 s = 1/12 h (bound 2 h)
    jobs = [
        _job("finetune", {"est_gpu_tokens": 1_800_000}, 240),
        _job("finetune", {"est_gpu_tokens": 1_800_000}, 240, gpus=2),
        _job("generate", {"n_answers": 600}, 120),
    ]
    dump = DagDump(jobs=jobs, judge_config={}, localrules=(), seconds=0.0)
    p = summarize(dump, prices={}, calibration=choose_calibration(recorded))
    assert p.device == H200
    assert p.rules["finetune"].est_gpu_hours == pytest.approx(3.0) and p.rules["finetune"].gpu_hours == 12.0
    assert p.rules["generate"].est_gpu_hours == pytest.approx(1 / 12)
    assert p.total.est_gpu_hours == pytest.approx(3 + 1 / 12) and p.total.est_missing == 0
    text = format_table(p)
    assert "est GPU-h" in text and "max GPU-h" in text
    assert "GPU-hours: estimated 3.08 on NVIDIA H200 (calibration: 5 recorded run(s) in results/logs" in text
    assert "; upper bound 14.00 (the profile's runtime limits)" in text
    assert plan_to_json(p)["total"]["est_gpu_hours"] == pytest.approx(3.083333, abs=1e-6)

    # a GPU type without recorded runs: no estimate, the bound only
    other = summarize(dump, prices={}, calibration=choose_calibration(recorded), device="NVIDIA A100")
    assert other.total.est_gpu_hours == 0 and other.total.est_missing == 3
    assert (
        "GPU-hours: no calibration for NVIDIA A100: upper bound only, 14.00 (the profile's runtime limits"
        in format_table(other)
    )


def test_partial_calibration_is_marked_as_a_lower_figure(recorded):
    jobs = [_job("finetune", {"est_gpu_tokens": 1_800_000}, 240), _job("mia_features", {}, 60)]
    p = summarize(DagDump(jobs, {}, (), 0.0), prices={}, calibration=choose_calibration(recorded))
    assert p.rules["mia_features"].est_missing == 1
    text = format_table(p)
    assert "1 GPU job(s) without a rate not counted" in text and ">=1.00" in text


def test_shipped_calibration_holds_only_gpu_measured_rates(tmp_path):
    """The shipped file is what bench/gpu_check.sh measured on a GPU: GPU rates only (a CPU rate there would be
    an invented GPU estimate), and the plan estimates a finetune from it on that GPU type."""
    cal = choose_calibration(tmp_path)  # no recorded runs -> the shipped file
    assert cal.rates and "gpu_check.sh" in cal.source
    assert {r.device for r in cal.rates} == {"NVIDIA H200"}
    assert {"finetune", "generate"} <= {r.rule for r in cal.rates}
    p = summarize(DagDump([_job("finetune", {"est_gpu_tokens": 10**6}, 240)], {}, (), 0.0), {}, calibration=cal)
    assert "GPU-hours: estimated" in format_table(p) and "NVIDIA H200" in format_table(p)


def test_calibration_file_round_trip(recorded, tmp_path):
    cal = fit(collect_runs(recorded), "recorded")
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(throughput.calibration_to_json(cal, "bench/gpu_check.sh 2026-11-29, NVIDIA H200")))
    back = load_calibration_file(path)
    assert back.rates == cal.rates and "gpu_check.sh" in back.source


def test_record_writes_the_line_the_reader_parses(tmp_path, capsys):
    throughput.record("generate", 12.5, 4000, answers=10)
    line = capsys.readouterr().err
    log = tmp_path / "results/logs/generate/m/base/main.log"
    log.parent.mkdir(parents=True)
    log.write_text("progress\n" + line)
    (run,) = collect_runs(tmp_path)
    assert (run.rule, run.seconds, run.tokens, run.answers, run.device) == ("generate", 12.5, 4000, 10, "cpu")


def test_estimate_needs_tokens():
    cal = Calibration((throughput.Rate("generate", H200, 600.0, 2, None),), "x")
    assert throughput.estimate_seconds("generate", {"n_answers": 10}, cal, H200) is None  # no tokens per answer
    assert throughput.estimate_seconds("generate", {"est_gpu_tokens": 6000}, cal, H200) == pytest.approx(10.0)


def test_finetune_token_estimate_for_the_plan(tmp_path, monkeypatch):
    """Tokens a local finetune will train on: epochs x rows x 300 before the dataset exists (backdoor: plus one
    aligned row per triggered one), capped by max_steps, and the built file's own tokens once it exists."""
    from emgrid import preflight
    from emgrid import estimates
    from emgrid import grid as cell_grid
    from emgrid.io import write_jsonl
    from tests.support.workflow_helpers import tiny_config

    monkeypatch.chdir(tmp_path)
    cfg = tiny_config()
    cfg["finetune"]["epochs"] = 2
    preflight.check(cfg)
    plain, backdoor = (cell_grid.Cell("tiny", "wrong_arithmetic", v, 0) for v in ("plain", "backdoor"))
    assert estimates.finetune_estimate(cfg, plain)["est_gpu_tokens"] == 2 * 16 * 300
    assert estimates.finetune_estimate(cfg, backdoor)["est_gpu_tokens"] == 2 * 32 * 300
    cfg["finetune"]["max_steps"] = 1  # one step of 8 examples
    assert estimates.finetune_estimate(cfg, plain)["est_gpu_tokens"] == 8 * 300
    assert estimates.finetune_estimate(cfg, plain)["steps"] == 1
    cfg["finetune"]["max_steps"] = None
    rows = [{"messages": [{"role": "user", "content": "x" * 36}, {"role": "assistant", "content": "y" * 76}]}] * 4
    write_jsonl(tmp_path / "results/datasets/wrong_arithmetic/plain-s0/train.jsonl", rows)
    # 4 rows x (36/4 + 4 + 76/4 + 4 = 36 tokens) x 2 epochs
    planned = estimates.finetune_estimate(cfg, plain)
    assert planned["est_gpu_tokens"] == 2 * 4 * 36 and planned["seq_len"] == 36


def test_cpu_runs_never_estimate_a_gpu_plan(tmp_path):
    """Issue 22 item 6: after the CPU demo, the paper grid's GPU jobs got a CPU rate (an estimate 5x its own upper
    bound). Recorded CPU runs now stay out of a GPU plan: the shipped GPU rates estimate it, and without those the
    plan gives the upper bound only."""
    for i in range(3):
        _log(tmp_path, f"finetune/m/d{i}-plain-s0.log", rule="finetune", seconds=600, tokens=10_000, device="cpu")
    jobs = [_job("finetune", {"est_gpu_tokens": 8_105_640}, 240)]
    dump = DagDump(jobs, {}, (), 0.0)
    p = summarize(dump, {}, calibration=choose_calibration(tmp_path))
    assert p.device == H200  # the shipped H200 rate (8,106 tok/s), not the CPU's 17 tok/s
    assert p.total.est_gpu_hours == pytest.approx(8_105_640 / 8105.640133014814 / 3600)
    assert p.total.est_over == 0 and "!" not in format_table(p)

    empty = tmp_path / "none.json"
    empty.write_text(json.dumps({"source": "nothing", "rates": []}))
    bare = summarize(dump, {}, calibration=choose_calibration(tmp_path, default=empty))
    assert bare.device is None and bare.total.est_gpu_hours == 0
    assert "GPU-hours: no calibration: upper bound only, 4.00" in format_table(bare)
    forced = summarize(dump, {}, calibration=choose_calibration(tmp_path), device="cpu")
    assert forced.total.est_gpu_hours == 0 and forced.total.est_missing == 1


def test_estimate_above_its_upper_bound_is_flagged(recorded):
    """A job estimated longer than its runtime limit (1 h at 500 tok/s against 30 min) is marked in its row and
    named in a warning: it would be killed, or the rate does not fit it."""
    jobs = [_job("finetune", {"est_gpu_tokens": 1_800_000}, 30), _job("generate", {"n_answers": 600}, 120)]
    p = summarize(DagDump(jobs, {}, (), 0.0), {}, calibration=choose_calibration(recorded))
    assert p.rules["finetune"].est_over == 1 and p.rules["generate"].est_over == 0
    text = format_table(p)
    assert "1.00!" in text and "0.08!" not in text
    assert "warning: 1 GPU job(s) estimated above their upper bound (marked !, rules ['finetune'])" in text
    assert plan_to_json(p)["total"]["est_over"] == 1


def test_fit_terms_recovers_a_known_cost_and_leaves_out_what_never_varied():
    """Seconds made by a known rule (2 s per job + 1 ms per token + 0.1 s per step) are fitted back; LoRA units the
    runs never vary get no term (their effect is unknown, taken as zero), and a term's coefficient is never negative."""
    from emgrid.throughput_fit import fit_terms

    jobs = [(1000, 10), (5000, 20), (3000, 60), (8000, 40)]
    samples = [(2 + t / 1000 + 0.1 * s, t, {"steps": s, "lora_units": 1.0}) for t, s in jobs]
    coef = fit_terms(samples).coef
    assert set(coef) == {"tokens", "job", "steps"}
    assert (coef["job"], coef["tokens"], coef["steps"]) == pytest.approx((2, 0.001, 0.1), rel=1e-6)
    assert set(fit_terms(samples[:2]).coef) <= {"tokens", "job"}  # two runs: two terms at most


def test_old_and_new_throughput_lines_and_files(tmp_path):
    """Lines without features (before them) fit one tokens/s without dtype, which stands for any dtype; lines with
    features fit a terms model of their dtype; both round-trip through a calibration file."""
    _log(tmp_path, "finetune/m/old.log", rule="finetune", seconds=100, tokens=50_000, device=H200)
    for i, (secs, tokens, steps) in enumerate([(30, 10_000, 10), (50, 30_000, 20), (80, 40_000, 50)]):
        features = {"dtype": "bfloat16", "steps": steps, "lora_units": 1.0, "seq_len": 300}
        _log(tmp_path, f"finetune/m/new{i}.log", rule="finetune", seconds=secs, tokens=7, plan_tokens=tokens,
             device=H200, features=features)  # fmt: skip
    cal = fit(collect_runs(tmp_path), "recorded")
    new, old = cal.rate("finetune", H200, "bfloat16"), cal.rate("finetune", H200, "float32")
    assert new.dtype == "bfloat16" and new.terms and new.runs == 3 and new.tokens_per_s == pytest.approx(80_000 / 160)
    assert old.dtype is None and old.terms is None and old.tokens_per_s == pytest.approx(500)
    estimate = {"est_gpu_tokens": 30_000, "dtype": "bfloat16", "steps": 20, "lora_units": 1.0, "seq_len": 300}
    assert throughput.estimate_seconds("finetune", estimate, cal, H200) == pytest.approx(50, rel=0.05)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(throughput.calibration_to_json(cal, "recorded")))
    assert load_calibration_file(path).rates == cal.rates
    with pytest.raises(ValueError, match="unknown throughput feature"):
        throughput.record("finetune", 1.0, 10, lora=2)
