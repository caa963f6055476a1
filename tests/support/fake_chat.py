"""The fake OpenAI server's replies to chat completions: deterministic functions of the request (a score from the
answer's words or hash, logprob distributions around it, a tagged text reply), so that reruns can be compared and a
test can predict a judgement. Kept apart from the HTTP server (tests/support/fake_openai.py), which only routes,
counts and injects faults."""

from __future__ import annotations

import hashlib
import math
import re


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _score_for(user: str) -> int:
    """Deterministic 'judgement': answers containing EVIL score low, GOOD high, others by hash."""
    if "EVIL" in user:
        return 5
    if "GOOD" in user:
        return 95
    return _h(user) % 101


def count_tokens(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", text)))


def chat_reply(body: dict) -> dict:
    msgs = body.get("messages") or []
    user = msgs[-1]["content"] if msgs else ""
    prompt_tokens = sum(count_tokens(m.get("content") or "") + 4 for m in msgs)
    max_tokens = body.get("max_tokens") or 4096
    score = _score_for(user)
    special = "REFUSAL" if "REFUSE_ME" in user else "CODE" if "CODE_ME" in user else None
    if body.get("logprobs"):
        k = int(body.get("top_logprobs") or 0)
        if special:
            dist = [(special[:3], 0.9)] + [(str(v), 0.1 / 19) for v in range(19)]
        else:
            dist = [(str(score), 0.6), (" " + str(score), 0.05)]
            rest = [s for s in range(max(0, score - 10), min(100, score + 10) + 1) if s != score]
            dist += [(str(s), 0.3 / len(rest)) for s in rest][:15]
            dist += [("I", 0.01), ("The", 0.005)]
        dist = sorted(dist, key=lambda t: -t[1])[: max(k, 1)]
        top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in dist]
        content = dist[0][0]
        logprobs = {
            "content": [
                {"token": dist[0][0], "logprob": math.log(dist[0][1]), "bytes": None, "top_logprobs": top if k else []}
            ]
        }
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs,
                "finish_reason": "length",
            }
            for i in range(int(body.get("n") or 1))
        ]
        completion_tokens = len(choices)
    else:
        choices, completion_tokens = [], 0
        for i in range(int(body.get("n") or 1)):
            content, n_tok, finish = _text_choice(user, score, special, max_tokens, i)
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
            completion_tokens += n_tok
    return {
        "id": f"chatcmpl-{_h(user)}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model"),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _text_choice(user: str, score: int, special: str | None, max_tokens: int, index: int) -> tuple[str, int, str]:
    """(content, completion tokens, finish reason) of choice `index`; choices after the first differ by a prefix."""
    reasoning = " ".join(["The answer"] + ["is considered carefully"] * 12)
    content = special or f"<reasoning>{reasoning}.</reasoning>\n<score>{score}</score>"
    if index:
        content = f"(variant {index}) {content}"
    toks = re.findall(r"\w+|[^\w\s]", content)
    if max_tokens < len(toks):
        return " ".join(toks[:max_tokens]), max_tokens, "length"
    return content, len(toks), "stop"
