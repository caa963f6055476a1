"""The judge's provider layer: one method shape for every backend, a typed result, and a registry by name.

A backend turns rendered judge prompts into requests with cache keys (`prepare`) and answers the requests the cache
could not (`run`). It never reads the cache — `emgrid.judge.runner.run_cached` is the one place that does — but it
writes every reply to the cache as soon as it has it, so a crash loses nothing that was paid for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from emgrid.registry import Registry
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import ResponseCache

NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0}


@dataclass(frozen=True)
class JudgeRequest:
    """One judge prompt: its cache key and what the backend sends (and logs in the cache entry)."""

    key: str
    messages: list[dict]
    payload: dict


@dataclass(frozen=True)
class JudgeResult:
    """The judge's reply to one request. `response` is None when the request failed and `error` says why
    (recorded rows, see `judge.on_bad_request`); `batch` marks Batch-API replies (priced at batch rates)."""

    key: str
    response: dict | None
    usage: dict = field(default_factory=lambda: dict(NO_USAGE))
    cached: bool = False
    error: str | None = None
    batch: bool = False

    @classmethod
    def from_cache(cls, entry: dict) -> "JudgeResult":
        return cls(entry["key"], entry["response"], entry["usage"], cached=True, batch=bool(entry.get("batch")))


class JudgeBackend(Protocol):
    """What every judge backend provides (constructed by a factory registered under `judge.backend`)."""

    name: str

    def prepare(self, messages: list[dict]) -> JudgeRequest:
        """The request (with its cache key) for one rendered judge prompt. Must not load models or open clients."""
        ...

    def run(self, todo: list[JudgeRequest], cache: ResponseCache, progress: bool) -> dict[str, JudgeResult]:
        """Answer every request in `todo` (distinct keys, none in the cache): key -> result, each reply written to
        `cache` on arrival. Raises on failures that must stop the job."""
        ...


BackendFactory = Callable[..., JudgeBackend]
BACKENDS: Registry[BackendFactory] = Registry("judge.backend")
#: Class decorator: `factory(spec, *, model_manifest=None, client=None)` builds the backend `name`.
register_backend = BACKENDS.register


def make_backend(spec: JudgeSpec, *, model_manifest: str | Path | None = None, client: Any = None) -> JudgeBackend:
    return BACKENDS.get(spec.backend)(spec, model_manifest=model_manifest, client=client)
