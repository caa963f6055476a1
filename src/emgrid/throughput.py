"""Measured throughput of the GPU jobs, for `emgrid plan`'s GPU-hours estimate.

Why: the profile's runtime limits are what a job may take at most, so GPU-hours summed from them are an upper bound.
A real estimate needs a rate. Every finetune and generate job writes one `emgrid-throughput` line into its log
(`record`: wall seconds since the job's script started, tokens processed, answers written, the device it ran on);
`collect_runs` reads them, `fit` turns them into tokens/s per (rule, device type), and `estimate_seconds` divides a
planned job's tokens by it.

Why the log and not Snakemake's `benchmark:` files: a benchmark file is an output, so adding the directive (or
deleting a benchmark file) reruns every finished job whose file is missing: hundreds of GPU-hours on an existing
results tree. The log is already an output, and its content never triggers a rerun.

Without recorded runs the shipped calibration file (gpu_calibration.json, written by bench/gpu_check.sh) is used;
a device type it lacks gets no estimate at all ("no calibration: upper bound only") rather than an invented rate.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

MARK = "emgrid-throughput "
LOG_DIR = Path("results/logs")
DEFAULT_CALIBRATION = Path(__file__).parent / "gpu_calibration.json"
# The rules that record their throughput (their logs are results/logs/<rule>/...).
RECORDED_RULES = ("finetune", "generate", "efficacy_generate", "steering_generate")
# Rules whose planned tokens are answers x tokens per answer (the planner knows the answers, not their lengths).
ANSWER_RULES = ("generate", "efficacy_generate", "steering_generate")


@dataclass(frozen=True)
class Run:
    """One finished job, as its log records it: rule, device type, wall seconds, tokens processed, answers written."""

    rule: str
    device: str
    seconds: float
    tokens: int
    answers: int = 0


@dataclass(frozen=True)
class Rate:
    """Fitted throughput of one rule on one device type: total tokens / total wall seconds of its runs (model loading
    included, so the rate is per job as scheduled), and tokens per answer for the generation rules."""

    rule: str
    device: str
    tokens_per_s: float
    runs: int
    tokens_per_answer: float | None = None


@dataclass(frozen=True)
class Calibration:
    rates: tuple[Rate, ...]
    source: str  # where the rates come from, printed by the plan
    note: str = ""

    def devices(self) -> list[str]:
        """Device types with rates, most runs first; "cpu" last (a GPU estimate from CPU runs is a last resort)."""
        runs: dict[str, int] = {}
        for r in self.rates:
            runs[r.device] = runs.get(r.device, 0) + r.runs
        return sorted(runs, key=lambda d: (d == "cpu", -runs[d], d))

    def rate(self, rule: str, device: str) -> Rate | None:
        return next((r for r in self.rates if r.rule == rule and r.device == device), None)


def record(rule: str, seconds: float, tokens: int, answers: int | None = None) -> None:
    """Write the job's throughput line to stderr (the job's log, see emgrid.runlog): its wall seconds, tokens
    processed, answers written, and the device type (the GPU's name, else "cpu")."""
    from emgrid.models import device_name

    rec = {"rule": rule, "seconds": round(float(seconds), 3), "tokens": int(tokens), "device": device_name()}
    if answers is not None:
        rec["answers"] = int(answers)
    print(MARK + json.dumps(rec, sort_keys=True), file=sys.stderr, flush=True)


def read_log_record(log: Path) -> dict | None:
    """The last throughput line of a job's log, or None (a log from before the line existed, or a failed job)."""
    if not log.is_file():
        return None
    found = None
    with log.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(MARK):
                try:
                    found = json.loads(line[len(MARK) :])
                except json.JSONDecodeError:
                    continue
    return found


def collect_runs(workdir: str | Path = ".") -> list[Run]:
    """Every finished job of RECORDED_RULES whose log holds a throughput line (logs from before it are skipped)."""
    runs = []
    for rule in RECORDED_RULES:
        for log in sorted((Path(workdir) / LOG_DIR / rule).glob("**/*.log")):
            rec = read_log_record(log)
            if rec is None or rec.get("rule") != rule or not rec.get("seconds"):
                continue
            runs.append(
                Run(rule, rec["device"], float(rec["seconds"]), int(rec["tokens"]), int(rec.get("answers") or 0))
            )
    return runs


def fit(runs: list[Run], source: str) -> Calibration:
    """Tokens/s per (rule, device): total tokens over total seconds (a job-weighted mean would let short jobs, mostly
    model loading, dominate); tokens per answer likewise, for the generation rules."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.rule, r.device), []).append(r)
    rates = []
    for (rule, device), rs in sorted(groups.items()):
        seconds, tokens, answers = sum(r.seconds for r in rs), sum(r.tokens for r in rs), sum(r.answers for r in rs)
        if seconds <= 0 or tokens <= 0:
            continue
        per_answer = tokens / answers if answers else None
        rates.append(Rate(rule, device, tokens / seconds, len(rs), per_answer))
    return Calibration(tuple(rates), source)


def load_calibration_file(path: Path = DEFAULT_CALIBRATION) -> Calibration:
    """A calibration file: {"source", "note", "rates": [{rule, device, tokens_per_s, runs, tokens_per_answer}]}."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    rates = tuple(
        Rate(r["rule"], r["device"], float(r["tokens_per_s"]), int(r["runs"]), r.get("tokens_per_answer"))
        for r in raw.get("rates", [])
    )
    return Calibration(rates, f"{Path(path).name} ({raw.get('source', 'shipped')})", raw.get("note", ""))


def calibration_to_json(cal: Calibration, source: str, note: str = "") -> dict:
    """The calibration file's content (bench/gpu_check.sh writes one from its measurements)."""
    return {
        "source": source,
        "note": note,
        "rates": [
            {
                "rule": r.rule,
                "device": r.device,
                "tokens_per_s": r.tokens_per_s,
                "runs": r.runs,
                "tokens_per_answer": r.tokens_per_answer,
            }
            for r in cal.rates
        ],
    }


def choose_calibration(workdir: str | Path = ".", default: Path = DEFAULT_CALIBRATION) -> Calibration:
    """The runs recorded in the job logs under results/logs when there are any, else the shipped calibration file."""
    runs = collect_runs(workdir)
    if runs:
        return fit(runs, f"{len(runs)} recorded run(s) in {LOG_DIR}")
    return load_calibration_file(default)


def planned_tokens(rule: str, estimate: dict, rate: Rate) -> float | None:
    """Tokens a planned job will process: the planner's `est_gpu_tokens`, or answers x the rate's tokens per answer."""
    if estimate.get("est_gpu_tokens"):
        return float(estimate["est_gpu_tokens"])
    if rule in ANSWER_RULES and estimate.get("n_answers") and rate.tokens_per_answer:
        return float(estimate["n_answers"]) * rate.tokens_per_answer
    return None


def estimate_seconds(rule: str, estimate: dict, cal: Calibration, device: str) -> float | None:
    """Estimated wall seconds of one planned job on `device`, or None when the calibration cannot say."""
    rate = cal.rate(rule, device)
    if rate is None:
        return None
    tokens = planned_tokens(rule, estimate, rate)
    return None if tokens is None else tokens / rate.tokens_per_s


def update_calibration_file(path: str | Path, rate: Rate, source: str, note: str = "") -> None:
    """Put one measured rate into a calibration file (replacing the same rule and device), for bench/gpu_check.sh;
    the file then ships as gpu_calibration.json."""
    path = Path(path)
    cal = load_calibration_file(path) if path.is_file() else Calibration((), source)
    rates = tuple(r for r in cal.rates if (r.rule, r.device) != (rate.rule, rate.device)) + (rate,)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = [n for n in cal.note.split(" | ") if n and not n.startswith(f"{rate.rule}:")] + [f"{rate.rule}: {note}"]
    body = calibration_to_json(Calibration(rates, source), source, " | ".join(notes))
    path.write_text(json.dumps(body, indent=2) + "\n")
