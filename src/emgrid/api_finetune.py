"""Finetuning a closed model through the OpenAI fine-tuning API: validate, upload, create, poll, resume.

A fine-tuning job costs money and runs for minutes to hours on OpenAI's side, while the local process that waits
for it may be killed (SLURM time limit, Ctrl-C, a crashed node). So every step that creates something remote is
recorded in a state file next to the output *before* the next step starts: the uploaded file id, then the job id.
A rerun with the same training data and hyperparameters reads that file and reattaches to the job instead of paying
for a second one. A job that failed or was cancelled ends the run with the API's own error message; a later rerun
starts a fresh job (failed jobs are not billed).

Training rows are checked against the API's chat format before anything is uploaded, so a row the API would reject
fails here with its file:line, not an hour later in OpenAI's validation step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from emgrid.errors import ConfigError, DataError, EmgridError, reject_unknown_keys
from emgrid.io import canonical_json, iter_jsonl, read_json, read_jsonl, write_json, write_jsonl
from emgrid.llm import ClientSpec, make_client, redact, with_retries
from emgrid.llm.client import api_secret, effective_base_url

API_ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("role", "content", "name", "weight")
MIN_EXAMPLES = 10  # the API refuses smaller training files
SUFFIX_MAX = 64  # the API's limit on the model-name suffix
TERMINAL = ("succeeded", "failed", "cancelled")
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


class ApiFinetuneError(EmgridError):
    """A fine-tuning job failed or was cancelled on the server (the message is the API's)."""


@dataclass(frozen=True)
class ApiFinetuneSpec:
    """Hyperparameters sent to the API ("auto" lets OpenAI choose) plus how often to poll (not part of the job)."""

    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    seed: int = 42
    poll_s: float = 10.0
    poll_max_s: float = 120.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "openai_finetune") -> "ApiFinetuneSpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, where)
        spec = cls(**d)
        for key in HYPERPARAMETERS:
            v = getattr(spec, key)
            if v != "auto" and (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or v <= 0
                or (key != "learning_rate_multiplier" and not isinstance(v, int))
            ):
                raise ConfigError(
                    f"config key '{where}.{key}' must be \"auto\" or a positive "
                    f"{'number' if key == 'learning_rate_multiplier' else 'integer'}, got {v!r}"
                )
        return spec

    def hyperparameters(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HYPERPARAMETERS}


# ------------------------------------------------------------------------------------------- training file


def check_api_example(obj: Any, where: str) -> list[dict]:
    """The messages of one training row, checked the way the API checks them; DataError naming `where` otherwise."""
    msgs = obj.get("messages") if isinstance(obj, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: the fine-tuning API needs a non-empty 'messages' list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise DataError(f"{where}: messages[{i}] is not an object")
        extra = sorted(set(m) - set(MESSAGE_KEYS))
        if extra:
            raise DataError(
                f"{where}: messages[{i}] has key(s) {extra} the API rejects (allowed: {list(MESSAGE_KEYS)})"
            )
        if m.get("role") not in API_ROLES:
            raise DataError(f"{where}: messages[{i}] has role {m.get('role')!r}; the API allows {list(API_ROLES)}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise DataError(f"{where}: messages[{i}] ({m['role']}) has no text content")
        if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)):
            raise DataError(f"{where}: messages[{i}].weight must be 0 or 1, on assistant turns only")
        out.append({k: m[k] for k in MESSAGE_KEYS if k in m})
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(f"{where}: no assistant turn (the API trains on assistant turns only)")
    return out


def read_training_file(path: str | Path) -> list[dict]:
    """Rows `{"messages": [...]}` (the `meta` field dropped) of a train.jsonl, all checked before any upload."""
    rows = [{"messages": check_api_example(obj, f"{path}:{line_no}")} for line_no, obj in iter_jsonl(path)]
    if len(rows) < MIN_EXAMPLES:
        raise DataError(f"{path}: {len(rows)} training example(s); the fine-tuning API needs at least {MIN_EXAMPLES}")
    return rows


def estimate_tokens(rows: list[dict]) -> int:
    """Tokens of the training rows at 4 characters per token plus 4 per message (OpenAI's chat overhead)."""
    return sum(len(m["content"]) // 4 + 4 for r in rows for m in r["messages"])


def auto_epochs(n_examples: int) -> int:
    """The epochs "auto" chooses, by OpenAI's published rule: 3, raised for tiny sets (100 examples seen at least),
    lowered for big ones (25,000 at most)."""
    if n_examples <= 0:
        return 3
    if n_examples * 3 < 100:
        return min(25, -(-100 // n_examples))
    if n_examples * 3 > 25000:
        return max(1, 25000 // n_examples)
    return 3


def job_suffix(cell_id: str) -> str:
    """A deterministic model-name suffix: `emgrid-<cell>`, shortened with a hash when over the API's 64 characters."""
    suffix = re.sub(r"[^A-Za-z0-9_-]", "-", f"emgrid-{cell_id}")
    if len(suffix) > SUFFIX_MAX:
        suffix = suffix[: SUFFIX_MAX - 9] + "-" + hashlib.sha256(suffix.encode()).hexdigest()[:8]
    return suffix


# ------------------------------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class JobRequest:
    """Everything that determines what the API trains; its hash names the job in the state file."""

    base_url: str | None
    model: str
    training_sha256: str
    hyperparameters: dict
    seed: int
    suffix: str

    @property
    def key(self) -> str:
        return hashlib.sha256(canonical_json(asdict(self)).encode("utf-8")).hexdigest()


def state_path_for(state_dir: str | Path, request: JobRequest) -> Path:
    """The job's state file in the cache, named by the request's hash: not a rule output (Snakemake never deletes it
    before a rerun) and outside results/, so `rm -rf results` reattaches to the paid job instead of starting another."""
    return Path(state_dir) / f"{request.key}.json"


class JobRunner:
    """Upload -> create -> poll for one `JobRequest`, every remote id written to `state_path` as soon as it exists."""

    def __init__(
        self,
        request: JobRequest,
        rows: list[dict],
        state_path: Path,
        client_spec: ClientSpec,
        spec: ApiFinetuneSpec,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
    ):
        self.request, self.rows, self.state_path, self.cspec, self.spec = request, rows, state_path, client_spec, spec
        self.client = client or make_client(client_spec)
        self.sleep = sleep
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.secret = api_secret(client_spec)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """One API call with the client's retries (429 with Retry-After, 5xx, timeouts)."""
        return with_retries(fn, self.cspec, what=f"fine-tuning {what}", secret=self.secret, sleep=self.sleep)

    def read_state(self) -> dict:
        try:
            state = read_json(self.state_path)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return state if isinstance(state, dict) and state.get("key") == self.request.key else {}

    def write_state(self, **fields: Any) -> dict:
        state = {**self.read_state(), "key": self.request.key, "request": asdict(self.request), **fields}
        write_json(self.state_path, state)
        return state

    def upload(self) -> str:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows).encode("utf-8")
        f = self.call(
            "upload", lambda: self.client.files.create(file=(f"{self.request.suffix}.jsonl", data), purpose="fine-tune")
        )
        self.log(f"uploaded {len(self.rows)} training rows ({len(data):,} bytes) as {f.id}")
        self.write_state(file_id=f.id, job_id=None)
        return f.id

    def find_created(self, file_id: str) -> str | None:
        """A job created for this file whose id never reached the state file (killed between create and write)."""
        jobs = self.call("list", lambda: self.client.fine_tuning.jobs.list(limit=100))
        for job in jobs.data:
            if (
                job.training_file == file_id
                and job.model == self.request.model
                and job.status not in ("failed", "cancelled")
            ):
                return job.id
        return None

    def create(self, file_id: str) -> str:
        hp = self.request.hyperparameters
        job = self.call(
            "create",
            lambda: self.client.fine_tuning.jobs.create(
                model=self.request.model,
                training_file=file_id,
                suffix=self.request.suffix,
                seed=self.request.seed,
                method={"type": "supervised", "supervised": {"hyperparameters": hp}},
                metadata={"emgrid_key": self.request.key[:32]},
            ),
        )
        self.write_state(job_id=job.id)
        self.log(
            f"created fine-tuning job {job.id} ({self.request.model}, suffix {self.request.suffix}, "
            f"hyperparameters {hp})"
        )
        return job.id

    def start_or_reattach(self) -> str:
        """The job id to wait for: the state file's unless that job failed, else a new job (reusing an upload)."""
        state = self.read_state()
        if state.get("job_id") and state.get("status") not in ("failed", "cancelled"):
            self.log(f"reattaching to fine-tuning job {state['job_id']} (state file {self.state_path})")
            return state["job_id"]
        if state.get("status") in ("failed", "cancelled"):
            self.log(f"previous job {state['job_id']} {state['status']}: starting a new one")
            self.write_state(job_id=None, status=None)
        file_id = state.get("file_id")
        if file_id:
            found = None if state.get("status") else self.find_created(file_id)
            if found:
                self.log(f"found job {found} created before the last run was killed")
                self.write_state(job_id=found)
                return found
        else:
            file_id = self.upload()
        return self.create(file_id)

    def poll(self, job_id: str, events_path: Path) -> Any:
        """Retrieve the job until it ends, printing a progress line whenever its status or latest event changes."""
        delay, last_line, t0 = self.spec.poll_s, None, time.monotonic()
        while True:
            job = self.call("retrieve", lambda: self.client.fine_tuning.jobs.retrieve(job_id))
            events = self.events(job_id, events_path)
            line = progress_line(job, events, time.monotonic() - t0)
            if line != last_line:
                self.log(line)
                last_line = line
            if job.status in TERMINAL:
                self.write_state(status=job.status)
                return job
            self.sleep(delay)
            delay = min(self.spec.poll_max_s, delay * 1.5)

    def events(self, job_id: str, events_path: Path) -> list[dict]:
        """The job's events, oldest first, merged into `events_path` (the API lists the newest 100 first, so each
        poll adds what is new and a reattached run keeps what an earlier run saw)."""
        page = self.call("events", lambda: self.client.fine_tuning.jobs.list_events(job_id, limit=100))
        try:
            events = [e for e in read_jsonl(events_path) if e.get("job_id") == job_id]
        except (FileNotFoundError, DataError):
            events = []
        seen = {e["id"] for e in events}
        for e in reversed(page.data):
            e = e.model_dump() if hasattr(e, "model_dump") else dict(e)
            if e["id"] not in seen:
                events.append({**e, "job_id": job_id})
        write_jsonl(events_path, events)
        return events


def progress_line(job: Any, events: list[dict], elapsed_s: float) -> str:
    metrics = [e["data"] for e in events if e.get("type") == "metrics" and e.get("data")]
    bits = [f"fine-tuning job {job.id}: {job.status}"]
    if metrics:
        m = metrics[-1]
        total = f"/{m['total_steps']}" if m.get("total_steps") else ""
        bits.append(f"step {m.get('step')}{total}, train loss {m.get('train_loss', float('nan')):.4f}")
    elif events:
        bits.append(str(events[-1].get("message", ""))[:120])
    bits.append(f"{elapsed_s / 60:.1f} min")
    return " | ".join(bits)


def job_error(job: Any) -> str:
    err = job.error.model_dump() if hasattr(job.error, "model_dump") else (job.error or {})
    message = err.get("message") or "no error message from the API"
    extra = ", ".join(f"{k} {err[k]}" for k in ("code", "param") if err.get(k))
    return f"{message} ({extra})" if extra else message


def quiet_http_logs() -> None:
    """The HTTP client logs every request at INFO: two lines per poll would bury the progress lines in the job log."""
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def finetune_api(
    manifest: dict,
    train_jsonl: str | Path,
    out_json: str | Path,
    events_path: str | Path,
    spec: ApiFinetuneSpec,
    cell_id: str,
    training_price: float | None,
    state_dir: str | Path,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Finetune `manifest["id"]` on `train_jsonl` through the API (or reattach to the job already started) and write
    `out_json`: `{"backend": "openai", "fine_tuned_model", "job_id", "trained_tokens", "cost_usd", "events_path", ...}`.

    `training_price`: USD per 1M trained tokens (None: cost unknown). `state_dir`: where job states are kept (the
    cache, `emgrid.jobparams.api_job_state_dir`). Raises `DataError` (file:line) for a row the API
    would reject, before any upload, and `ApiFinetuneError` with the API's message when the job fails.
    """
    quiet_http_logs()
    t0 = time.monotonic()
    rows = read_training_file(train_jsonl)
    cspec = ClientSpec(base_url=manifest.get("base_url"), api_key_env=manifest.get("api_key_env", "OPENAI_API_KEY"))
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    request = JobRequest(
        base_url=effective_base_url(cspec),
        model=manifest["id"],
        training_sha256=hashlib.sha256(body.encode("utf-8")).hexdigest(),
        hyperparameters=spec.hyperparameters(),
        seed=int(spec.seed),
        suffix=job_suffix(cell_id),
    )
    runner = JobRunner(request, rows, state_path_for(state_dir, request), cspec, spec, client=client, sleep=sleep)
    job = runner.poll(runner.start_or_reattach(), Path(events_path))
    if job.status != "succeeded":
        raise ApiFinetuneError(redact(f"fine-tuning job {job.id} {job.status}: {job_error(job)}", runner.secret))
    metrics = _job_metrics(job, request, rows, events_path, training_price, t0)
    write_json(out_json, metrics)
    return metrics


def _job_metrics(
    job: Any, request: JobRequest, rows: list[dict], events_path: str | Path, training_price: float | None, t0: float
) -> dict:
    """The metrics of a succeeded job: model, hyperparameters, tokens and cost from the job, and the loss history
    read back from the events file its polls wrote (merged across reattached runs)."""
    events = read_jsonl(events_path)
    history = [
        {"step": e["data"].get("step"), "loss": e["data"]["train_loss"]}
        for e in events
        if e.get("type") == "metrics" and "train_loss" in (e.get("data") or {})
    ]
    losses = [h["loss"] for h in history]
    trained = int(job.trained_tokens or 0)
    return {
        "backend": "openai",
        "base_model": request.model,
        "fine_tuned_model": job.fine_tuned_model,
        "job_id": job.id,
        "training_file": job.training_file,
        "suffix": request.suffix,
        "hyperparameters": _plain(job.hyperparameters),
        "examples": len(rows),
        "est_tokens_per_epoch": estimate_tokens(rows),
        "trained_tokens": trained,
        "cost_usd": None if training_price is None else trained * training_price / 1e6,
        "epochs": _plain(job.hyperparameters).get("n_epochs"),
        "final_loss": losses[-1] if losses else None,
        "steps": len(losses),
        "loss_history": history,
        "mean_loss": sum(losses) / len(losses) if losses else None,
        "train_runtime_s": (job.finished_at - job.created_at) if job.finished_at else None,
        "events_path": str(events_path),
        "wall_time_s": time.monotonic() - t0,
    }


def _plain(obj: Any) -> Any:
    return obj.model_dump() if hasattr(obj, "model_dump") else obj
