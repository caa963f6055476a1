"""OpenAI Batch API judge: half price, resumable.

The batch id is persisted in the response cache's `state/` (named after the hash of the set of pending request
keys) before any waiting, so a job killed while waiting resumes polling the same batch on rerun and never pays
twice. Results are merged into the cache by `custom_id` (= cache key); rows that failed (error file) or never ran (expired or
cancelled batch) are resubmitted in a new, smaller batch, up to `batch_max_resubmits` times.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from emgrid.errors import JudgeError
from emgrid.io import canonical_json, sha256_text
from emgrid.judge.backends import JudgeRequest, JudgeResult, register_backend
from emgrid.judge.openai_backend import RECORDABLE_STATUS, OpenAIRequests
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import MalformedResponse, ResponseCache, make_client, normalize_body, redact, with_retries
from emgrid.llm.retry import RETRYABLE_4XX

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
        self.answered: dict[str, JudgeResult] = {}  # replies merged into the cache in this run
        self.failed: dict[str, str] = {}  # key -> permanent error message (recorded rows)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        return with_retries(fn, self.cspec, what=what, secret=self.secret, sleep=self.sleep)

    def submit(self, requests: dict[str, dict], state_name: str) -> dict:
        body = "".join(
            json.dumps({"custom_id": k, "method": "POST", "url": ENDPOINT, "body": r}, ensure_ascii=False) + "\n"
            for k, r in requests.items()
        ).encode("utf-8")
        f = self.call(
            "batch input upload",
            lambda: self.client.files.create(file=(f"{state_name}.jsonl", io.BytesIO(body)), purpose="batch"),
        )
        b = self.call(
            "batch create",
            lambda: self.client.batches.create(
                input_file_id=f.id,
                endpoint=ENDPOINT,
                completion_window=self.spec.batch_completion_window,
                metadata={"emgrid": state_name},
            ),
        )
        return {
            "batch_id": b.id,
            "input_file_id": f.id,
            "keys": sorted(requests),
            "status": b.status,
            "submitted": time.time(),
        }

    def wait(self, batch_id: str) -> Any:
        delay, started = self.spec.batch_poll_s, time.monotonic()
        while True:
            b = self.call(f"batch retrieve {batch_id}", lambda: self.client.batches.retrieve(batch_id))
            if b.status in TERMINAL:
                return b
            waited = time.monotonic() - started
            if self.spec.batch_max_wait_s is not None and waited >= self.spec.batch_max_wait_s:
                raise JudgeError(
                    f"batch {batch_id} still {b.status} after {waited:.0f} s (batch_max_wait_s); "
                    "rerun the same job to resume waiting on it (it is not resubmitted)"
                )
            self.sleep(delay)
            delay = min(self.spec.batch_poll_max_s, delay * self.spec.batch_poll_factor)

    def download(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        return _parse_jsonl(
            self.call(f"batch file download {file_id}", lambda: self.client.files.content(file_id).text)
        )


def _resume_open_batches(cache: ResponseCache, pending: list[str]) -> list[tuple[str, dict]]:
    """Submitted-but-unmerged batches whose requests are all still pending (e.g. the job was killed while waiting)."""
    pset, covered, out = set(pending), set(), []
    for name in cache.state_names("batch-"):
        st = cache.read_state(name)
        if not st or st.get("merged") or not st.get("keys"):
            continue
        keys = set(st["keys"])
        if keys <= pset and not keys & covered:
            log.info("resuming batch %s (%d requests)", st["batch_id"], len(keys))
            covered |= keys
            out.append((name, st))
    return out


def _is_permanent(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX


@register_backend("openai-batch")
class OpenAIBatchBackend(OpenAIRequests):
    """The Batch API: same requests and keys as the sync backend; replies marked `batch` (batch prices)."""

    name = "openai-batch"

    def __init__(
        self,
        spec: JudgeSpec,
        *,
        model_manifest: str | Path | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(spec, client)
        self.sleep = sleep

    def run(self, todo: list[JudgeRequest], cache: ResponseCache, progress: bool) -> dict[str, JudgeResult]:
        by_key = {r.key: r.payload for r in todo}
        api = _Api(self.spec, self.client or make_client(self.client_spec), self.sleep)
        pending, resubmits = sorted(by_key), 0
        bar = tqdm(total=len(pending), desc=f"judge batch {self.spec.model}", unit="req", disable=not progress)
        try:
            while pending:
                groups = _resume_open_batches(cache, pending)  # a killed job's batches: wait on them, never resubmit
                covered = {k for _, st in groups for k in st["keys"]}
                groups += self._submit(api, cache, by_key, [k for k in pending if k not in covered])
                statuses = []
                for name, state in groups:
                    n_before = len(api.answered)
                    statuses.append(self._collect(api, cache, by_key, name, state))
                    bar.update(len(api.answered) - n_before)
                pending = [k for k in pending if k not in api.failed and k not in api.answered]
                if pending:
                    resubmits += 1
                    if resubmits > self.spec.batch_max_resubmits:
                        raise JudgeError(
                            f"{len(pending)} batch request(s) still unanswered after {self.spec.batch_max_resubmits} "
                            f"resubmission(s) (last: {', '.join(statuses)}); see the cache's errors/ dir; "
                            "a rerun resubmits only these"
                        )
                    log.info("%s: resubmitting %d unanswered request(s)", ", ".join(statuses), len(pending))
        finally:
            bar.close()
        return {**{k: JudgeResult(k, None, error=msg, batch=True) for k, msg in api.failed.items()}, **api.answered}

    def _submit(self, api: _Api, cache: ResponseCache, by_key: dict[str, dict], keys: list[str]) -> list:
        groups = []
        for i in range(0, len(keys), self.spec.batch_max_requests):
            chunk = keys[i : i + self.spec.batch_max_requests]
            name = _state_name(chunk)
            state = api.submit({k: by_key[k] for k in chunk}, name)
            cache.write_state(name, state)  # persisted BEFORE waiting: a killed job resumes this batch
            log.info("submitted batch %s with %d requests", state["batch_id"], len(chunk))
            groups.append((name, state))
        return groups

    def _collect(self, api: _Api, cache: ResponseCache, by_key: dict[str, dict], name: str, state: dict) -> str:
        """Wait for one batch and merge its output and error files into the cache; returns 'id status'."""
        batch = api.wait(state["batch_id"])
        if batch.status == "failed":
            errs = getattr(getattr(batch, "errors", None), "data", None) or []
            msg = "; ".join(f"{getattr(e, 'code', '')}: {getattr(e, 'message', '')}" for e in errs[:5])
            cache.write_state(name, {**state, "status": "failed", "merged": True})
            raise JudgeError(redact(f"batch {state['batch_id']} failed validation: {msg or 'no details'}", api.secret))
        for line in api.download(getattr(batch, "output_file_id", None)) + api.download(
            getattr(batch, "error_file_id", None)
        ):
            k = line.get("custom_id")
            if k in by_key and k not in api.answered:
                self._merge_line(api, cache, by_key[k], k, line, state["batch_id"])
        cache.write_state(name, {**state, "status": batch.status, "merged": True})
        return f"{state['batch_id']} {batch.status}"

    def _merge_line(self, api: _Api, cache: ResponseCache, request: dict, k: str, line: dict, batch_id: str) -> None:
        resp = line.get("response") or {}
        status = resp.get("status_code")
        if status == 200 and not line.get("error"):
            try:
                response, usage = normalize_body(resp.get("body") or {})
            except (MalformedResponse, KeyError, TypeError) as e:
                cache.put_error(k, request, f"malformed batch result: {e}", permanent=False)
                return
            cache.put(k, request, response, usage, backend=self.kind, batch=True, batch_id=batch_id)
            api.answered[k] = JudgeResult(k, response, usage, batch=True)
            return
        err = line.get("error") or ((resp.get("body") or {}).get("error")) or {}
        msg = redact(f"HTTP {status}: {err.get('code', '')} {err.get('message', '')}".strip(), api.secret)
        permanent = _is_permanent(status)
        cache.put_error(k, request, msg, permanent=permanent, status=status, batch_id=batch_id)
        if not permanent:
            return
        if self.spec.on_bad_request == "record" and status in RECORDABLE_STATUS:
            api.failed[k] = f"batch request {k[:12]}: {msg}"
        else:
            raise JudgeError(
                f"batch {batch_id} request {k[:12]} was rejected ({msg}); "
                "fix the request or set judge.on_bad_request: record"
            )
