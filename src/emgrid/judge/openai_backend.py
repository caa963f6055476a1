"""Synchronous OpenAI-compatible judge: bounded thread pool of cached, retried chat calls."""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from tqdm import tqdm

from emgrid.judge.ledger import Ledger
from emgrid.judge.spec import JudgeSpec
from emgrid.llm_client import PermanentRequestError, backend_kind, chat, ledger_key, make_client

RECORDABLE_STATUS = {400, 422}  # a problem with this one request (e.g. too long), not with the job


def build_request(messages: list[dict], spec: JudgeSpec) -> dict:
    return {"model": spec.model, "messages": messages, **spec.api_params()}


def run_sync(messages_list: list[list[dict]], spec: JudgeSpec, ledger: Ledger, progress: bool = True,
             client: Any = None) -> list[dict]:
    """One result per message list, in order: `{"key", "response", "usage", "cached", "error", "batch": False}`.

    Identical requests are sent once. A 401/403/404 (or a 400 with on_bad_request=fail) cancels the rest and raises.
    """
    cspec = spec.client_spec()
    kind = backend_kind(cspec)
    requests = [build_request(m, spec) for m in messages_list]
    keys = [ledger_key(r, kind) for r in requests]
    unique: dict[str, dict] = {}
    for k, r in zip(keys, requests):
        unique.setdefault(k, r)
    results: dict[str, dict] = {}
    todo = []
    for k, r in unique.items():
        hit = ledger.get(k)
        if hit is not None:
            results[k] = {"key": k, "response": hit["response"], "usage": hit["usage"], "cached": True,
                          "error": None, "batch": bool(hit.get("batch", False))}
        else:
            todo.append((k, r))
    if todo:
        client = client or make_client(cspec)

        def one(k: str, r: dict) -> dict:
            try:
                res = chat(r, client_spec=cspec, ledger=ledger, client=client, backend=kind)
                return {**res, "error": None, "batch": False}
            except PermanentRequestError as e:
                if spec.on_bad_request == "record" and e.status in RECORDABLE_STATUS:
                    return {"key": k, "response": None, "usage": {"prompt_tokens": 0, "completion_tokens": 0},
                            "cached": False, "error": str(e), "batch": False}
                raise

        pool = ThreadPoolExecutor(max_workers=spec.max_concurrency)
        futures = {pool.submit(one, k, r): k for k, r in todo}
        bar = tqdm(total=len(futures), desc=f"judge {spec.model}", unit="req", disable=not progress)
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
    return [results[k] for k in keys]
