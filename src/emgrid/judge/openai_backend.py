"""Synchronous OpenAI-compatible judge: a bounded thread pool of retried chat calls (`emgrid.llm.send`)."""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from tqdm import tqdm

from emgrid.judge.backends import JudgeRequest, JudgeResult, register_backend
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import PermanentRequestError, ResponseCache, backend_kind, cache_key, make_client, send

RECORDABLE_STATUS = {400, 422}  # a problem with this one request (e.g. too long), not with the job


def build_request(messages: list[dict], spec: JudgeSpec) -> dict:
    return {"model": spec.model, "messages": messages, **spec.api_params()}


class OpenAIRequests:
    """`prepare` shared by the sync and Batch backends: same request, same key (a batch reply serves a sync rerun)."""

    def __init__(self, spec: JudgeSpec, client: Any = None):
        self.spec, self.client = spec, client
        self.client_spec = spec.client_spec()
        self.kind = backend_kind(self.client_spec)  # resolved once: the effective endpoint is part of every key

    def prepare(self, messages: list[dict]) -> JudgeRequest:
        request = build_request(messages, self.spec)
        return JudgeRequest(cache_key(request, self.kind), messages, request)


@register_backend("openai")
class OpenAISyncBackend(OpenAIRequests):
    """Chat completions, `max_concurrency` in flight. A 401/403/404 (or a 400 with on_bad_request=fail) cancels the
    rest and raises; with on_bad_request=record a 400/422 becomes a row with `error`."""

    name = "openai"

    def __init__(self, spec: JudgeSpec, *, model_manifest: str | Path | None = None, client: Any = None):
        super().__init__(spec, client)

    def _one(self, r: JudgeRequest, cache: ResponseCache) -> JudgeResult:
        try:
            res = send(
                r.payload, r.key, client_spec=self.client_spec, cache=cache, client=self.client, backend=self.kind
            )
            return JudgeResult(r.key, res["response"], res["usage"])
        except PermanentRequestError as e:
            if self.spec.on_bad_request == "record" and e.status in RECORDABLE_STATUS:
                return JudgeResult(r.key, None, error=str(e))
            raise

    def run(self, todo: list[JudgeRequest], cache: ResponseCache, progress: bool) -> dict[str, JudgeResult]:
        self.client = self.client or make_client(self.client_spec)
        results: dict[str, JudgeResult] = {}
        pool = ThreadPoolExecutor(max_workers=self.spec.max_concurrency)
        futures = {pool.submit(self._one, r, cache): r.key for r in todo}
        bar = tqdm(total=len(futures), desc=f"judge {self.spec.model}", unit="req", disable=not progress)
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    results[futures[f]] = f.result()  # re-raises a permanent error: fail fast
                    bar.update(1)
        finally:
            bar.close()
            pool.shutdown(wait=True, cancel_futures=True)
        return results
