"""One cached, retried chat-completion call against any OpenAI-compatible server.

Used by the judge and by the dataset stage's synthetic source. Every successful reply is stored in a `Ledger`
(content-addressed, see `emgrid.judge.ledger`), so a rerun never pays twice. Transient failures (429 honouring
Retry-After, 5xx, timeouts, connection errors, truncated JSON) are retried with exponential backoff and jitter;
permanent ones (400, 401, 403, 404, 422) raise at once. The API key is read only from the environment variable
named in the spec and is scrubbed from every error message.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from emgrid.errors import ConfigError, JudgeError, reject_unknown_keys
from emgrid.judge.ledger import Ledger, request_key

PERMANENT_STATUS = {400, 401, 403, 404, 422}


@dataclass(frozen=True)
class ClientSpec:
    """How to reach the server. `api_key_env=None` sends a dummy key (local servers that need none)."""

    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    @classmethod
    def from_dict(cls, d: dict | None) -> "ClientSpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, "llm")
        return cls(**d)


class MalformedResponse(ValueError):
    """A 200 reply without the expected fields (treated like a truncated body: retried)."""


class PermanentRequestError(JudgeError):
    """The server rejected the request itself (4xx other than 408/409/429): retrying cannot help."""

    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


def api_key(spec: ClientSpec) -> str:
    if spec.api_key_env is None:
        return "not-needed"
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise JudgeError(f"environment variable {spec.api_key_env} (api_key_env) is not set; "
                         "the API key is read only from there")
    return key


def redact(message: str, secret: str | None) -> str:
    """Remove the key, and anything that looks like an OpenAI key, from a message."""
    if secret and len(secret) >= 4:
        message = message.replace(secret, "***")
    return re.sub(r"sk-[A-Za-z0-9_\-*]{4,}", "sk-***", message)


def make_client(spec: ClientSpec):
    """openai.OpenAI with its own retries off (we retry, count and log ourselves)."""
    import openai

    return openai.OpenAI(api_key=api_key(spec), base_url=spec.base_url, timeout=spec.timeout_s, max_retries=0)


def classify_error(exc: BaseException) -> tuple[bool, int | None, float | None]:
    """(transient?, HTTP status, Retry-After seconds) of an exception from the openai client."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = None
        try:
            ra = exc.response.headers.get("retry-after")
            retry_after = float(ra) if ra is not None else None
        except (TypeError, ValueError, AttributeError):
            retry_after = None
        return status not in PERMANENT_STATUS, status, retry_after
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.APIResponseValidationError,
                        json.JSONDecodeError, MalformedResponse)):
        return True, None, None
    return False, None, None


def with_retries(fn: Callable[[], Any], spec: ClientSpec, *, what: str, secret: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call `fn` until it succeeds, retrying transient errors up to `spec.max_retries` times."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified below, unknown ones re-raised
            transient, status, retry_after = classify_error(e)
            msg = redact(f"{type(e).__name__}: {e}", secret)
            if not transient:
                if status is None:
                    raise
                hint = " (check the API key in the environment variable named by api_key_env)" \
                    if status in (401, 403) else ""
                raise PermanentRequestError(f"{what}: HTTP {status}{hint}: {msg}", status) from None
            if attempt >= spec.max_retries:
                raise JudgeError(f"{what}: still failing after {attempt} retries: {msg}") from None
            delay = min(spec.backoff_max_s, spec.backoff_base_s * 2 ** attempt) * (0.5 + random.random() / 2)
            if retry_after is not None:
                delay = max(delay, min(retry_after, spec.backoff_max_s))
            sleep(delay)
            attempt += 1


def normalize_body(body: dict) -> tuple[dict, dict]:
    """(response, usage) of a chat-completion JSON body: text, finish_reason and the first token's top logprobs."""
    choice = (body.get("choices") or [None])[0]
    if not isinstance(choice, dict):
        raise MalformedResponse("chat completion has no choices")
    top = None
    content = (choice.get("logprobs") or {}).get("content") or []
    if content:
        first = content[0]
        top = [{"token": t["token"], "logprob": t["logprob"]} for t in (first.get("top_logprobs") or [])]
        if not top:
            top = [{"token": first["token"], "logprob": first["logprob"]}]
    usage = body.get("usage") or {}
    return ({"text": (choice.get("message") or {}).get("content"), "finish_reason": choice.get("finish_reason"),
             "top_logprobs": top},
            {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
             "completion_tokens": int(usage.get("completion_tokens") or 0)})


def normalize_response(resp: Any) -> tuple[dict, dict]:
    return normalize_body(resp if isinstance(resp, dict) else resp.model_dump())


def split_request(request: dict) -> tuple[str, list[dict], dict, dict]:
    """(model, messages, API params, ledger-only params). Keys starting with `_` (e.g. `_sample`) only salt the
    ledger key, so several samples of one prompt get distinct entries; they are never sent."""
    if "model" not in request or "messages" not in request:
        raise ConfigError("chat request needs 'model' and 'messages'")
    params = {k: v for k, v in request.items() if k not in ("model", "messages") and not k.startswith("_")}
    salt = {k: v for k, v in request.items() if k.startswith("_")}
    return request["model"], request["messages"], params, salt


def backend_kind(spec: ClientSpec) -> str:
    """Part of the ledger key: the API family plus the server, since another server may serve other weights under
    the same model name. The sync and Batch APIs share it (same reply, so a batch result serves a sync rerun)."""
    return "openai" if spec.base_url is None else f"openai@{spec.base_url.rstrip('/')}"


def ledger_key(request: dict, backend: str = "openai") -> str:
    model, messages, params, salt = split_request(request)
    return request_key(backend, model, messages, {**params, **salt})


def chat(request: dict, *, client_spec: ClientSpec | dict, ledger: Ledger, client: Any = None,
         backend: str | None = None) -> dict:
    """Send one chat completion unless the ledger has it.

    `request`: `{"model", "messages", **params}` as for `client.chat.completions.create` (plus `_`-keys that only
    salt the cache key). Returns `{"key", "response": {"text", "finish_reason", "top_logprobs"}, "usage":
    {"prompt_tokens", "completion_tokens"}, "cached": bool}`. Raises `PermanentRequestError` (4xx) at once and
    `JudgeError` when transient errors outlast the retries; both are recorded under the ledger's `errors/`.
    """
    spec = client_spec if isinstance(client_spec, ClientSpec) else ClientSpec.from_dict(client_spec)
    model, messages, params, _ = split_request(request)
    backend = backend or backend_kind(spec)
    key = ledger_key(request, backend)
    hit = ledger.get(key)
    if hit is not None:
        return {"key": key, "response": hit["response"], "usage": hit["usage"], "cached": True}
    secret = None if spec.api_key_env is None else os.environ.get(spec.api_key_env)
    client = client or make_client(spec)
    logged_request = {"model": model, "messages": messages, **params}
    try:
        response, usage = with_retries(
            lambda: normalize_response(client.chat.completions.create(model=model, messages=messages, **params)),
            spec, what=f"chat request {key[:12]} to {spec.base_url or 'api.openai.com'}",
            secret=secret)
    except PermanentRequestError as e:
        ledger.put_error(key, logged_request, str(e), permanent=True, status=e.status)
        raise
    except JudgeError as e:
        ledger.put_error(key, logged_request, str(e), permanent=False)
        raise
    ledger.put(key, logged_request, response, usage, backend=backend)
    return {"key": key, "response": response, "usage": usage, "cached": False}
