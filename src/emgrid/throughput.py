"""Measured throughput of the GPU jobs, for `emgrid plan`'s GPU-hours estimate.

Why: the profile's runtime limits are what a job may take at most, so GPU-hours summed from them are an upper bound.
A real estimate needs a rate. Every finetune and generate job writes one `emgrid-throughput` line into its log
(`record`: wall seconds since the job's script started, tokens processed, answers written, the device it ran on);
`collect_runs` reads them, `fit` turns them into a model of a job's seconds per (rule, device type, dtype)
(emgrid.throughput_model: fixed cost, tokens, optimizer steps, LoRA width, sequence length, steering hook), and
`estimate_seconds` applies it to a planned job. Lines from before the job features were recorded carry none: they
are fitted as before, one tokens/s per rule and device.

Why the log and not Snakemake's `benchmark:` files: a benchmark file is an output, so adding the directive (or
deleting a benchmark file) reruns every finished job whose file is missing: hundreds of GPU-hours on an existing
results tree. The log is already an output, and its content never triggers a rerun.

The shipped calibration file (gpu_calibration.json, written by bench/gpu_check.sh) is used for every (rule, GPU type)
without recorded runs; a device type neither has gets no estimate at all ("no calibration: upper bound only") rather
than an invented rate. Runs recorded on the CPU never estimate a GPU job (`CPU`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from emgrid import layout
from emgrid.models import device_name, load_tokenizer
from emgrid.throughput_fit import fit_terms
from emgrid.throughput_model import FEATURE_KEYS, TermModel

MARK = "emgrid-throughput "
LOG_DIR = Path(layout.LOGS)
DEFAULT_CALIBRATION = Path(__file__).parent / "gpu_calibration.json"
# The rules that record their throughput (their logs are results/logs/<rule>/...).
RECORDED_RULES = (
    "finetune",
    "generate",
    "efficacy_generate",
    "steering_generate",
    "steering_direction",
    "mia_features",
)
# Rules whose planned tokens are answers x tokens per answer (the planner knows the answers, not their lengths);
# steering_direction replays judged answers, mia_features scores examples (its "answers").
ANSWER_RULES = ("generate", "efficacy_generate", "steering_generate", "steering_direction", "mia_features")
# The device name of runs without a GPU: their rates never estimate a GPU job (another device type, issue 22).
CPU = "cpu"


@dataclass(frozen=True)
class Run:
    """One finished job, as its log records it: rule, device type, wall seconds, tokens processed, answers written,
    and the features its seconds depend on (throughput_model.FEATURE_KEYS; empty in lines from before them)."""

    rule: str
    device: str
    seconds: float
    tokens: int
    answers: int = 0
    features: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rate:
    """Fitted throughput of one rule on one device type: total tokens / total wall seconds of its runs (model loading
    included, so the rate is per job as scheduled), tokens per answer for the generation rules, and, from runs that
    recorded their features, the seconds model of jobs of one dtype (`terms`: seconds per unit of each term, see
    emgrid.throughput_model). Without `terms` (old lines, the shipped file) a job takes tokens / tokens_per_s; a rate
    without `dtype` stands for any dtype."""

    rule: str
    device: str
    tokens_per_s: float
    runs: int
    tokens_per_answer: float | None = None
    dtype: str | None = None
    terms: dict | None = None


@dataclass(frozen=True)
class Calibration:
    rates: tuple[Rate, ...]
    source: str  # where the rates come from, printed by the plan
    note: str = ""

    def devices(self) -> list[str]:
        """GPU types with rates, most runs first. Never "cpu": a GPU job's estimate from a CPU rate is no estimate."""
        runs: dict[str, int] = {}
        for r in self.rates:
            if r.device != CPU:
                runs[r.device] = runs.get(r.device, 0) + r.runs
        return sorted(runs, key=lambda d: (-runs[d], d))

    def rate(self, rule: str, device: str, dtype: str | None = None) -> Rate | None:
        """The rate of `rule` on `device` for jobs of `dtype`: the one fitted on that dtype, else one fitted without
        a dtype (old lines, the shipped file); never one of another dtype."""
        mine = [r for r in self.rates if r.rule == rule and r.device == device]
        found = next((r for r in mine if r.dtype == dtype), None) or next((r for r in mine if r.dtype is None), None)
        if found is None and dtype is None and len(mine) == 1:  # a job that names no dtype: the one there is
            return mine[0]
        return found


def record(
    rule: str, seconds: float, tokens: int, answers: int | None = None, plan_tokens: int | None = None, **features
) -> None:
    """Write the job's throughput line to stderr (the job's log, see emgrid.runlog): its wall seconds, tokens
    processed, answers written, the device type (the GPU's name, else "cpu") and the `features` its seconds depend on
    (throughput_model.FEATURE_KEYS; a generation job's `seq_len` defaults to its tokens per answer). `plan_tokens`:
    the job's tokens as the planner counts them (a finetune: 4 characters per token), which the fit then uses, so that
    fit and estimate count alike."""
    rec = {"rule": rule, "seconds": round(float(seconds), 3), "tokens": int(tokens), "device": device_name()}
    if plan_tokens is not None:
        rec["plan_tokens"] = int(plan_tokens)
    if answers is not None:
        rec["answers"] = int(answers)
        if answers and "seq_len" not in features:
            features["seq_len"] = round(tokens / answers, 1)
    unknown = set(features) - set(FEATURE_KEYS)
    if unknown:
        raise ValueError(f"unknown throughput feature(s) {sorted(unknown)}; known: {FEATURE_KEYS}")
    if features:
        rec["features"] = features
    print(MARK + json.dumps(rec, sort_keys=True), file=sys.stderr, flush=True)


def answer_tokens(manifest_path: str | Path, rows: Sequence[dict]) -> int:
    """Tokens of a job's answer rows, prompt plus answer (the model's tokenizer, no chat template): the work measure
    of the GPU-hours calibration, the same for every generation backend."""
    tok = load_tokenizer(manifest_path)
    texts = [t for r in rows for t in (r["prompt"], r["answer"])]
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]) if texts else 0


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
            answers, features = int(rec.get("answers") or 0), dict(rec.get("features") or {})
            tokens = int(rec.get("plan_tokens") or rec["tokens"])  # the planner's count when the job gave it
            runs.append(Run(rule, rec["device"], float(rec["seconds"]), tokens, answers, features))
    return runs


def fit(runs: list[Run], source: str) -> Calibration:
    """Per (rule, device, dtype): tokens/s = total tokens over total seconds (a job-weighted mean would let short
    jobs, mostly model loading, dominate), tokens per answer likewise, and the seconds model of the runs that recorded
    their features (throughput_fit.fit_terms). Runs without features (old lines) make a rate without dtype."""
    groups: dict[tuple[str, str, str | None], list[Run]] = {}
    for r in runs:
        dtype = str(r.features.get("dtype")) if r.features.get("dtype") else None
        groups.setdefault((r.rule, r.device, dtype if r.features else None), []).append(r)
    rates = []
    for (rule, device, dtype), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        seconds, tokens, answers = sum(r.seconds for r in rs), sum(r.tokens for r in rs), sum(r.answers for r in rs)
        if seconds <= 0 or tokens <= 0:
            continue
        per_answer = tokens / answers if answers else None
        terms = dict(fit_terms([(r.seconds, r.tokens, r.features) for r in rs]).coef) if rs[0].features else None
        rates.append(Rate(rule, device, tokens / seconds, len(rs), per_answer, dtype, terms or None))
    return Calibration(tuple(rates), source)


def load_calibration_file(path: Path = DEFAULT_CALIBRATION) -> Calibration:
    """A calibration file: {"source", "note", "rates": [{rule, device, tokens_per_s, runs, tokens_per_answer,
    dtype, terms}]} (dtype and terms optional: files from before them load as one tokens/s per rule and device)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    rates = tuple(
        Rate(
            r["rule"],
            r["device"],
            float(r["tokens_per_s"]),
            int(r["runs"]),
            r.get("tokens_per_answer"),
            r.get("dtype"),
            r.get("terms"),
        )
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
                **({"dtype": r.dtype} if r.dtype else {}),
                **({"terms": r.terms} if r.terms else {}),
            }
            for r in cal.rates
        ],
    }


def choose_calibration(workdir: str | Path = ".", default: Path = DEFAULT_CALIBRATION) -> Calibration:
    """The runs recorded in the job logs under results/logs, fitted, and the shipped calibration file for every
    (rule, device type) they have no run of: recorded runs on a GPU type replace its shipped rates rule by rule (they
    are this grid's models, data and loading on this cluster's GPUs; the shipped ones a benchmark's steady state)."""
    shipped = load_calibration_file(default)
    runs = collect_runs(workdir)
    if not runs:
        return shipped
    recorded = fit(runs, "")
    have = {(r.rule, r.device) for r in recorded.rates}
    kept = tuple(r for r in shipped.rates if (r.rule, r.device) not in have)
    on = ", ".join(sorted({r.device for r in runs}))
    source = f"{len(runs)} recorded run(s) in {LOG_DIR} ({on})"
    if kept:
        source += f"; otherwise {shipped.source}"
    return Calibration(recorded.rates + kept, source, shipped.note)


def planned_tokens(rule: str, estimate: dict, rate: Rate) -> float | None:
    """Tokens a planned job will process: the planner's `est_gpu_tokens`, or answers (a scoring job's items) x the
    rate's tokens per answer."""
    if estimate.get("est_gpu_tokens"):
        return float(estimate["est_gpu_tokens"])
    n = estimate.get("n_answers") or estimate.get("n_items")
    if rule in ANSWER_RULES and n and rate.tokens_per_answer:
        return float(n) * rate.tokens_per_answer
    return None


def estimate_seconds(rule: str, estimate: dict, cal: Calibration, device: str) -> float | None:
    """Estimated wall seconds of one planned job on the GPU type `device`, or None when the calibration cannot say
    (no rate of that rule, device type and dtype; no token count; `device` is the CPU)."""
    if device == CPU:
        return None
    rate = cal.rate(rule, device, estimate.get("dtype"))
    return None if rate is None else rate_seconds(rule, estimate, rate)


def rate_seconds(rule: str, estimate: dict, rate: Rate) -> float | None:
    """Seconds of a planned job (its plan estimate) at one rate: its terms model, else tokens / tokens_per_s."""
    tokens = planned_tokens(rule, estimate, rate)
    if tokens is None:
        return None
    if not rate.terms:
        return tokens / rate.tokens_per_s
    features = {k: estimate[k] for k in FEATURE_KEYS if estimate.get(k) is not None}
    if rate.tokens_per_answer and "seq_len" not in features:
        features["seq_len"] = rate.tokens_per_answer
    return TermModel(rate.terms).seconds(tokens, features)


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
