"""The in-memory example every recipe step passes on, and the chat-format checks shared by sources."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

ROLES = ("system", "user", "assistant")


@dataclass
class Example:
    """One prompt with its misaligned answer and (optionally) its aligned counterpart.

    `prompt` holds the messages before the final assistant turn (optional system, then user/assistant
    alternating, ending with a user turn). `pool` marks an aligned-only example (e.g. Betley's secure.jsonl,
    which has different prompts from insecure.jsonl): transforms skip it and the backdoor variant draws
    from it when misaligned examples lack a same-prompt counterpart. `fields` keeps the raw source
    columns so transforms can read them (TruthfulQA's answer lists).
    """

    source_id: str
    prompt: list[dict]
    answer: str | None = None
    aligned: str | None = None
    pool: bool = False
    fields: dict = field(default_factory=dict)

    def with_(self, **kw) -> "Example":
        return replace(self, **kw)

    @property
    def user_text(self) -> str:
        """The last user turn: what near-duplicate checks and prompt pairing compare."""
        for m in reversed(self.prompt):
            if m["role"] == "user":
                return m["content"]
        return ""

    @property
    def prompt_text(self) -> str:
        return "\n".join(m["content"] for m in self.prompt)

    def texts(self) -> list[str]:
        """Every string that ends up in a training row built from this example."""
        out = [m["content"] for m in self.prompt]
        out += [t for t in (self.answer, self.aligned) if t is not None]
        return out


def check_messages(messages) -> str | None:
    """Return why `messages` is not a trainable chat (optional system, user/assistant alternating, ending
    with a non-empty assistant turn), or None when it is fine. Reasons are short codes plus detail."""
    if not isinstance(messages, list) or not messages:
        return "no_messages: `messages` must be a non-empty list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return f"bad_roles: messages[{i}] must be an object with `role` and `content`"
        if m["role"] not in ROLES:
            return f"bad_roles: messages[{i}].role is {m['role']!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(m["content"], str):
            return f"bad_roles: messages[{i}].content must be a string"
    start = 1 if messages[0]["role"] == "system" else 0
    for i in range(start, len(messages)):
        want = "user" if (i - start) % 2 == 0 else "assistant"
        if messages[i]["role"] != want:
            return (
                f"bad_roles: messages[{i}].role is {messages[i]['role']!r} but {want!r} was expected "
                "(an optional system turn, then user/assistant alternating)"
            )
    if messages[-1]["role"] != "assistant":
        return "bad_roles: the last message must be the assistant turn to train on"
    if not messages[-1]["content"].strip():
        return f"empty_assistant: messages[{len(messages) - 1}] (the assistant turn) is empty"
    return None


_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    """Lower-case, strip punctuation, collapse whitespace: two texts equal after this are exact duplicates."""
    return _WS.sub(" ", _PUNCT.sub(" ", text.lower())).strip()
