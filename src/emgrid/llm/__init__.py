"""The LLM-call layer below the judge and the dataset stage: an OpenAI-compatible client (`client`), the
content-addressed response cache every reply goes through (`cache`), the one retry policy (`retry`) and the
layer's own errors (`errors`). It imports nothing from `emgrid.judge` or `emgrid.data`."""

from __future__ import annotations

from emgrid.llm.cache import ResponseCache, request_key
from emgrid.llm.client import (
    ChatSession,
    ClientSpec,
    backend_kind,
    cache_key,
    chat,
    effective_base_url,
    make_client,
    normalize_body,
    send,
    split_llm_config,
)
from emgrid.llm.errors import LLMError, MalformedResponse, PermanentRequestError
from emgrid.llm.retry import redact, with_retries

__all__ = [
    "ChatSession",
    "ClientSpec",
    "LLMError",
    "MalformedResponse",
    "PermanentRequestError",
    "ResponseCache",
    "backend_kind",
    "cache_key",
    "chat",
    "effective_base_url",
    "make_client",
    "normalize_body",
    "redact",
    "request_key",
    "send",
    "split_llm_config",
    "with_retries",
]
