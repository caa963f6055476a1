"""The one retry policy of every LLM request (chat calls, Batch API and Files calls).

Why our own loop and not the openai client's (`max_retries=0` there): a 200 reply with a truncated or malformed body
must be retried too, which the client cannot see; two nested loops would multiply the attempts (7 x 7); and the
config's `max_retries` / `backoff_*_s` should bound every wait, with each retry logged in the job's log. The policy
follows the openai SDK's own rules where they exist:

- a 4xx other than 408, 409 and 429 is permanent: never retried, whatever the headers say;
- `x-should-retry: false` stops retrying at once, `x-should-retry: true` retries (any status not excluded above);
- otherwise 408, 409, 429, 5xx, timeouts, connection errors and malformed 200 replies are retried;
- the wait is the server's hint when it gives one (`retry-after-ms`, else `retry-after` in seconds or as an HTTP
  date), capped at `backoff_max_s`; else exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from emgrid.llm.errors import LLMError, MalformedResponse, PermanentRequestError

log = logging.getLogger(__name__)
RETRYABLE_4XX = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Verdict:
    """What to do about one failed attempt."""

    retry: bool
    status: int | None = None
    wait_s: float | None = None  # the server's hint, if any
    permanent: bool = False  # the request itself is wrong (4xx): recordable by the caller


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    when = headers.get("retry-after")
    try:
        date = email.utils.parsedate_to_datetime(when) if when else None
    except (TypeError, ValueError):
        return None
    return None if date is None else max(0.0, date.timestamp() - time.time())


def judge_failure(exc: BaseException) -> Verdict | None:
    """The verdict on an exception from the openai client, or None when it is not an API failure (re-raised)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status, headers = exc.status_code, getattr(exc.response, "headers", None)
        if 400 <= status < 500 and status not in RETRYABLE_4XX:
            return Verdict(False, status, permanent=True)
        should = (headers.get("x-should-retry") if headers is not None else None) or ""
        if should.lower() in ("true", "false"):
            return Verdict(should.lower() == "true", status, retry_after_s(headers))
        return Verdict(status in RETRYABLE_4XX or status >= 500, status, retry_after_s(headers))
    if isinstance(
        exc,
        (
            openai.APITimeoutError,
            openai.APIConnectionError,
            openai.APIResponseValidationError,
            json.JSONDecodeError,
            MalformedResponse,
        ),
    ):
        return Verdict(True)
    return None


def redact(message: str, secret: str | None) -> str:
    """Remove the key, and anything that looks like an OpenAI key, from a message."""
    if secret and len(secret) >= 4:
        message = message.replace(secret, "***")
    return re.sub(r"sk-[A-Za-z0-9_\-*]{4,}", "sk-***", message)


def backoff_s(attempt: int, base_s: float, max_s: float, hint_s: float | None) -> float:
    """The server's hint (capped), else exponential backoff with jitter in [1/2, 1] of the nominal delay."""
    if hint_s is not None:
        return min(hint_s, max_s)
    return min(max_s, base_s * 2**attempt) * (0.5 + random.random() / 2)


def with_retries(
    fn: Callable[[], Any],
    spec: Any,
    *,
    what: str,
    secret: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call `fn` until it succeeds; `spec` has `max_retries`, `backoff_base_s`, `backoff_max_s` (a ClientSpec).

    Raises `PermanentRequestError` at once for a rejected request, `LLMError` when the server says not to retry or
    the retries run out; exceptions that are not API failures propagate unchanged. Messages never hold the key.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - judged below, unknown ones re-raised
            verdict = judge_failure(e)
            if verdict is None:
                raise
            msg = redact(f"{type(e).__name__}: {e}", secret)
            if verdict.permanent:
                hint = (
                    " (check the API key in the environment variable named by api_key_env)"
                    if verdict.status in (401, 403)
                    else ""
                )
                raise PermanentRequestError(f"{what}: HTTP {verdict.status}{hint}: {msg}", verdict.status) from None
            if not verdict.retry:
                raise LLMError(
                    f"{what}: HTTP {verdict.status}, server says not to retry (x-should-retry): {msg}", verdict.status
                ) from None
            if attempt >= spec.max_retries:
                raise LLMError(f"{what}: still failing after {attempt} retries: {msg}", verdict.status) from None
            delay = backoff_s(attempt, spec.backoff_base_s, spec.backoff_max_s, verdict.wait_s)
            log.info("%s: retry %d/%d in %.2f s after %s", what, attempt + 1, spec.max_retries, delay, msg[:200])
            sleep(delay)
            attempt += 1
