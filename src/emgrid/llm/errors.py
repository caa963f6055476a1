"""Errors of the LLM-call layer. They are not judge errors: the dataset stage calls the same client."""

from __future__ import annotations

from emgrid.errors import EmgridError


class LLMError(EmgridError):
    """An LLM request failed: retries ran out, the server said not to retry, or the API key is missing."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PermanentRequestError(LLMError):
    """The server rejected the request itself (4xx other than 408/409/429): retrying cannot help."""


class MalformedResponse(ValueError):
    """A 200 reply without the expected fields (treated like a truncated body: retried)."""
