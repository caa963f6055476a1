"""OpenAI Batch API judge: half price, resumable.

The batch id is persisted in the ledger's `state/` (named after the hash of the set of pending request keys) before
any waiting, so a job killed while waiting resumes polling the same batch on rerun and never pays twice. Results are
merged into the ledger by `custom_id` (= ledger key); rows that failed (error file) or never ran (expired or
cancelled batch) are resubmitted in a new, smaller batch, up to `batch_max_resubmits` times.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from typing import Any, Callable

from tqdm import tqdm

from emgrid.errors import JudgeError
from emgrid.io import canonical_json, sha256_text
from emgrid.judge.ledger import Ledger
from emgrid.judge.openai_backend import RECORDABLE_STATUS, build_request
from emgrid.judge.spec import JudgeSpec
from emgrid.llm_client import (PERMANENT_STATUS, MalformedResponse, backend_kind, ledger_key, make_client,
                               normalize_body, redact, with_retries)

log = logging.getLogger(__name__)
ENDPOINT = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _state_name(keys: list[str]) -> str:
    return "batch-" + sha256_text(canonical_json(sorted(keys)))[:32]


def _parse_jsonl(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("batch result line is not JSON (skipped, the row will be resubmitted): %.200s", line)
    return out


class _Api:
    """The few Batch/Files calls, each retried like a chat call."""

    def __init__(self, spec: JudgeSpec, client: Any, sleep: Callable[[float], None]):
        self.spec, self.cspec, self.client, self.sleep = spec, spec.client_spec(), client, sleep
        self.secret = None if spec.api_key_env is None else os.environ.get(spec.api_key_env)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        return with_retries(fn, self.cspec, what=what, secret=self.secret, sleep=self.sleep)

    def submit(self, requests: dict[str, dict], state_name: str) -> dict:
        body = "".join(json.dumps({"custom_id": k, "method": "POST", "url": ENDPOINT, "body": r}, ensure_ascii=False)
                       + "\n" for k, r in requests.items()).encode("utf-8")
        f = self.call("batch input upload", lambda: self.client.files.create(
            file=(f"{state_name}.jsonl", io.BytesIO(body)), purpose="batch"))
        b = self.call("batch create", lambda: self.client.batches.create(
            input_file_id=f.id, endpoint=ENDPOINT, completion_window=self.spec.batch_completion_window,
            metadata={"emgrid": state_name}))
        return {"batch_id": b.id, "input_file_id": f.id, "keys": sorted(requests), "status": b.status,
                "submitted": time.time()}

    def wait(self, batch_id: str) -> Any:
        delay, started = self.spec.batch_poll_s, time.monotonic()
        while True:
            b = self.call(f"batch retrieve {batch_id}", lambda: self.client.batches.retrieve(batch_id))
            if b.status in TERMINAL:
                return b
            waited = time.monotonic() - started
            if self.spec.batch_max_wait_s is not None and waited >= self.spec.batch_max_wait_s:
                raise JudgeError(f"batch {batch_id} still {b.status} after {waited:.0f} s (batch_max_wait_s); "
                                 "rerun the same job to resume waiting on it (it is not resubmitted)")
            self.sleep(delay)
            delay = min(self.spec.batch_poll_max_s, delay * self.spec.batch_poll_factor)

    def download(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        return _parse_jsonl(self.call(f"batch file download {file_id}", lambda: self.client.files.content(file_id).text))


def _resume_open_batches(ledger: Ledger, pending: list[str]) -> list[tuple[str, dict]]:
    """Submitted-but-unmerged batches whose requests are all still pending (e.g. the job was killed while waiting)."""
    pset, covered, out = set(pending), set(), []
    state_dir = ledger.root / "state"
    for path in sorted(state_dir.glob("batch-*.json")) if state_dir.is_dir() else []:
        st = ledger.read_state(path.stem)
        if not st or st.get("merged") or not st.get("keys"):
            continue
        keys = set(st["keys"])
        if keys <= pset and not keys & covered:
            log.info("resuming batch %s (%d requests)", st["batch_id"], len(keys))
            covered |= keys
            out.append((path.stem, st))
    return out


def run_batch(messages_list: list[list[dict]], spec: JudgeSpec, ledger: Ledger, progress: bool = True,
              client: Any = None, sleep: Callable[[float], None] = time.sleep) -> list[dict]:
    """Same result shape as `run_sync`, with `"batch": True` for rows answered by a batch."""
    kind = backend_kind(spec.client_spec())
    requests = [build_request(m, spec) for m in messages_list]
    keys = [ledger_key(r, kind) for r in requests]
    by_key = dict(zip(keys, requests))
    fresh: set[str] = set()
    failed: dict[str, str] = {}  # key -> permanent error message (recorded rows)
    pending = sorted(k for k in by_key if ledger.get(k) is None)
    api = _Api(spec, None, sleep)
    resubmits = 0
    bar = tqdm(total=len(pending), desc=f"judge batch {spec.model}", unit="req", disable=not progress or not pending)
    while pending:
        api.client = api.client or client or make_client(spec.client_spec())
        groups = _resume_open_batches(ledger, pending)  # a killed job's batches: wait on them, never resubmit
        covered = {k for _, st in groups for k in st["keys"]}
        rest = [k for k in pending if k not in covered]
        for i in range(0, len(rest), spec.batch_max_requests):
            chunk = rest[i:i + spec.batch_max_requests]
            name = _state_name(chunk)
            state = api.submit({k: by_key[k] for k in chunk}, name)
            ledger.write_state(name, state)  # persisted BEFORE waiting: a killed job resumes this batch
            log.info("submitted batch %s with %d requests", state["batch_id"], len(chunk))
            groups.append((name, state))
        statuses = []
        for name, state in groups:
            batch = api.wait(state["batch_id"])
            statuses.append(f"{state['batch_id']} {batch.status}")
            if batch.status == "failed":
                errs = getattr(getattr(batch, "errors", None), "data", None) or []
                msg = "; ".join(f"{getattr(e, 'code', '')}: {getattr(e, 'message', '')}" for e in errs[:5])
                ledger.write_state(name, {**state, "status": "failed", "merged": True})
                raise JudgeError(redact(f"batch {state['batch_id']} failed validation: {msg or 'no details'}",
                                        api.secret))
            n_before = len(fresh)
            for line in api.download(getattr(batch, "output_file_id", None)) + api.download(
                    getattr(batch, "error_file_id", None)):
                k = line.get("custom_id")
                if k not in by_key or ledger.get(k) is not None:
                    continue
                resp = line.get("response") or {}
                status = resp.get("status_code")
                if status == 200 and not line.get("error"):
                    try:
                        response, usage = normalize_body(resp.get("body") or {})
                    except (MalformedResponse, KeyError, TypeError) as e:
                        ledger.put_error(k, by_key[k], f"malformed batch result: {e}", permanent=False)
                        continue
                    ledger.put(k, by_key[k], response, usage, backend=kind, batch=True, batch_id=state["batch_id"])
                    fresh.add(k)
                    continue
                err = line.get("error") or ((resp.get("body") or {}).get("error")) or {}
                msg = redact(f"HTTP {status}: {err.get('code', '')} {err.get('message', '')}".strip(), api.secret)
                permanent = status in PERMANENT_STATUS
                ledger.put_error(k, by_key[k], msg, permanent=permanent, status=status, batch_id=state["batch_id"])
                if permanent:
                    if spec.on_bad_request == "record" and status in RECORDABLE_STATUS:
                        failed[k] = f"batch request {k[:12]}: {msg}"
                    else:
                        raise JudgeError(f"batch {state['batch_id']} request {k[:12]} was rejected ({msg}); "
                                         "fix the request or set judge.on_bad_request: record")
            ledger.write_state(name, {**state, "status": batch.status, "merged": True})
            bar.update(len(fresh) - n_before)
        pending = sorted(k for k in pending if k not in failed and ledger.get(k) is None)
        if pending:
            resubmits += 1
            if resubmits > spec.batch_max_resubmits:
                bar.close()
                raise JudgeError(f"{len(pending)} batch request(s) still unanswered after {spec.batch_max_resubmits} "
                                 f"resubmission(s) (last: {', '.join(statuses)}); see the ledger's errors/ dir; "
                                 "a rerun resubmits only these")
            log.info("%s: resubmitting %d unanswered request(s)", ", ".join(statuses), len(pending))
    bar.close()
    out = []
    for k in keys:
        if k in failed:
            out.append({"key": k, "response": None, "usage": {"prompt_tokens": 0, "completion_tokens": 0},
                        "cached": False, "error": failed[k], "batch": True})
            continue
        hit = ledger.get(k)
        out.append({"key": k, "response": hit["response"], "usage": hit["usage"], "cached": k not in fresh,
                    "error": None, "batch": bool(hit.get("batch", False))})
    return out
