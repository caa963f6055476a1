"""One cached, retried chat-completion call against any OpenAI-compatible server.

Used by the judge and by the dataset stage's synthetic source. Every successful reply is stored in a
`ResponseCache`, so a rerun never pays twice. Retries follow the one policy in `emgrid.llm.retry`. The API key is
read only from the environment variable named in the spec and is scrubbed from every error message.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields
from typing import Any, Callable

from emgrid.errors import ConfigError, reject_unknown_keys
from emgrid.llm.cache import ResponseCache, request_key
from emgrid.llm.errors import LLMError, MalformedResponse, PermanentRequestError
from emgrid.llm.retry import with_retries

OPENAI_API_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class ClientSpec:
    """How to reach the server. `api_key_env=None` sends a dummy key (local servers that need none)."""

    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 8
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    @classmethod
    def from_dict(cls, d: dict | None) -> "ClientSpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, "llm")
        return cls(**d)


def split_llm_config(llm: dict | None) -> tuple[dict, str | None]:
    """The config's `llm` block as (ClientSpec fields, default model). The block holds both how to reach the server
    and which model the dataset stage asks by default; they are used apart (the client is shared, the model is per
    request), so they are split here once. An unknown key raises ConfigError naming it (checked before any job)."""
    llm = dict(llm or {})
    model = llm.pop("model", None)
    known = {f.name for f in fields(ClientSpec)}
    unknown = sorted(set(llm) - known)
    if unknown:
        raise ConfigError(
            f"llm: unknown key(s) {unknown}; known: {sorted(known | {'model'})} (the response cache's "
            "folder is judge.ledger_dir / cache_dir)"
        )
    return llm, model


def effective_base_url(spec: ClientSpec) -> str:
    """Where requests really go, resolved as the openai SDK does: the spec's `base_url`, else the environment
    variable OPENAI_BASE_URL, else the OpenAI API. The client is given this URL explicitly, so the cache key and
    the destination can never disagree."""
    url = spec.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_API_URL
    return url.rstrip("/")


def backend_kind(spec: ClientSpec) -> str:
    """Part of the cache key: the API family plus the effective server, since another server may serve other weights
    under the same model name. `openai` alone means the OpenAI API (keys of earlier runs stay valid). The sync and
    Batch APIs share it (same reply, so a batch result serves a sync rerun)."""
    url = effective_base_url(spec)
    return "openai" if url == OPENAI_API_URL else f"openai@{url}"


def api_key(spec: ClientSpec) -> str:
    if spec.api_key_env is None:
        return "not-needed"
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise LLMError(
            f"environment variable {spec.api_key_env} (api_key_env) is not set; the API key is read only from there"
        )
    return key


def api_secret(spec: ClientSpec) -> str | None:
    """The key to scrub from messages (None when there is none)."""
    return None if spec.api_key_env is None else os.environ.get(spec.api_key_env)


def make_client(spec: ClientSpec):
    """openai.OpenAI at the effective endpoint with its own retries off (`emgrid.llm.retry` is the one policy)."""
    import openai

    return openai.OpenAI(
        api_key=api_key(spec), base_url=effective_base_url(spec), timeout=spec.timeout_s, max_retries=0
    )


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
    return (
        {
            "text": (choice.get("message") or {}).get("content"),
            "finish_reason": choice.get("finish_reason"),
            "top_logprobs": top,
        },
        {
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        },
    )


def normalize_response(resp: Any) -> tuple[dict, dict]:
    if not isinstance(resp, dict):
        resp = resp.model_dump() if hasattr(resp, "model_dump") else None
    if not isinstance(resp, dict):
        raise MalformedResponse(f"chat completion is not a JSON object: {type(resp).__name__}")
    return normalize_body(resp)


def split_request(request: dict) -> tuple[str, list[dict], dict, dict]:
    """(model, messages, API params, cache-only params). Keys starting with `_` (e.g. `_sample`) only salt the
    cache key, so several samples of one prompt get distinct entries; they are never sent."""
    if "model" not in request or "messages" not in request:
        raise ConfigError("chat request needs 'model' and 'messages'")
    params = {k: v for k, v in request.items() if k not in ("model", "messages") and not k.startswith("_")}
    salt = {k: v for k, v in request.items() if k.startswith("_")}
    return request["model"], request["messages"], params, salt


def cache_key(request: dict, backend: str = "openai") -> str:
    model, messages, params, salt = split_request(request)
    return request_key(backend, model, messages, {**params, **salt})


def send(
    request: dict,
    key: str,
    *,
    client_spec: ClientSpec,
    cache: ResponseCache,
    client: Any,
    backend: str,
    sleep: Callable[[float], None] | None = None,
) -> dict:
    """Send one request (the cache is not read here) and store the reply under `key` as soon as it arrives.

    Returns `{"key", "response", "usage", "cached": False}`. Failures are recorded under the cache's `errors/` and
    re-raised (`PermanentRequestError` for a rejected request, `LLMError` otherwise).
    """
    model, messages, params, _ = split_request(request)
    logged = {"model": model, "messages": messages, **params}
    kw = {} if sleep is None else {"sleep": sleep}
    try:
        response, usage = with_retries(
            lambda: normalize_response(client.chat.completions.create(model=model, messages=messages, **params)),
            client_spec,
            what=f"chat request {key[:12]} to {effective_base_url(client_spec)}",
            secret=api_secret(client_spec),
            **kw,
        )
    except LLMError as e:
        cache.put_error(key, logged, str(e), permanent=isinstance(e, PermanentRequestError), status=e.status)
        raise
    cache.put(key, logged, response, usage, backend=backend)
    return {"key": key, "response": response, "usage": usage, "cached": False}


class ChatSession:
    """Cached chat calls sharing one client between threads, created on the first cache miss: a rerun answered by
    the cache needs neither the network nor the API key."""

    def __init__(self, client_spec: ClientSpec | dict, cache: ResponseCache, client: Any = None):
        self.spec = client_spec if isinstance(client_spec, ClientSpec) else ClientSpec.from_dict(client_spec)
        self.cache, self._client = cache, client
        self.backend = backend_kind(self.spec)  # resolved once: the effective endpoint is part of every key
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.spec)
            return self._client

    def chat(self, request: dict) -> dict:
        """Send one chat completion unless the cache has it.

        `request`: `{"model", "messages", **params}` as for `client.chat.completions.create` (plus `_`-keys that
        only salt the cache key). Returns `{"key", "response": {"text", "finish_reason", "top_logprobs"}, "usage":
        {"prompt_tokens", "completion_tokens"}, "cached": bool}`.
        """
        key = cache_key(request, self.backend)
        hit = self.cache.get(key)
        if hit is not None:
            return {"key": key, "response": hit["response"], "usage": hit["usage"], "cached": True}
        return send(request, key, client_spec=self.spec, cache=self.cache, client=self.client(), backend=self.backend)


def chat(request: dict, *, client_spec: ClientSpec | dict, cache: ResponseCache, client: Any = None) -> dict:
    """One cached chat completion (see `ChatSession.chat`)."""
    return ChatSession(client_spec, cache, client).chat(request)
