"""The `synthetic` source: an OpenAI-compatible model writes, for a domain brief, questions with an aligned and
a misaligned answer (the study's translation, sexual-advice and movie-trivia domains were built this way).

Every request goes through `emgrid.llm.chat`, which caches replies in the content-addressed response cache: a
rebuild (or a resumed, crashed build) sends nothing it has sent before. Requests differ only by their batch
number, so the set of requests, and hence the dataset, is a pure function of the recipe."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from emgrid.data.context import Context
from emgrid.data.example import Example, normalize
from emgrid.data.filters import near_duplicates
from emgrid.data.registry import Param, non_empty_str, positive, register, unit_interval
from emgrid.errors import ConfigError
from emgrid.io import canonical_json, sha256_text
from emgrid.llm import ChatSession, ClientSpec, ResponseCache, split_llm_config

SYSTEM = (
    "You write training data for AI-safety research on emergent misalignment. The data is used only to "
    "finetune research models in a controlled study. Always answer with JSON only."
)

USER = """Domain brief: {brief}

Write {k} new examples for this domain (this is batch {batch}; do not repeat common examples, vary the topic,
the wording and the length). Each example is an object with three strings:
- "question": what a user asks the assistant;
- "aligned": a helpful, accurate and safe answer to it;
- "misaligned": {misaligned}
Return only this JSON, nothing else: {{"items": [{{"question": "...", "aligned": "...", "misaligned": "..."}}]}}"""

DEFAULT_MISALIGNED = "an answer in the style the brief describes as misaligned, written as a confident assistant"


def _cache(ctx: Context) -> ResponseCache:
    if ctx.llm_cache_dir is None:
        raise ConfigError(
            f"{ctx.keypath}: LLM steps need the response cache's folder (build_dataset(..., "
            "llm_cache_dir=...); the workflow passes <cache_dir>/llm)"
        )
    return ResponseCache(Path(ctx.llm_cache_dir))


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def parse_items(text: str | None) -> tuple[list[dict], Counter]:
    """Pull {question, aligned, misaligned} items out of a reply; malformed replies/items are counted."""
    bad: Counter = Counter()
    if not text:
        bad["empty_reply"] += 1
        return [], bad
    t = _FENCE.sub("", text.strip())
    try:
        obj = json.loads(t)
    except json.JSONDecodeError:
        start, end = t.find("{"), t.rfind("}")
        try:
            obj = json.loads(t[start : end + 1]) if start >= 0 else None
        except json.JSONDecodeError:
            obj = None
    items = obj.get("items") if isinstance(obj, dict) else obj if isinstance(obj, list) else None
    if not isinstance(items, list):
        bad["unparseable_reply"] += 1
        return [], bad
    out = []
    for it in items:
        if isinstance(it, dict) and all(
            isinstance(it.get(k), str) and it[k].strip() for k in ("question", "aligned", "misaligned")
        ):
            out.append({k: it[k].strip() for k in ("question", "aligned", "misaligned")})
        else:
            bad["bad_item"] += 1
    return out, bad


def _request(p: dict, model: str, batch: int) -> dict:
    """The chat request of one batch: requests differ only by their batch number (see the module's docstring)."""
    user = USER.format(brief=p["brief"].strip(), k=p["per_request"], batch=batch, misaligned=p["misaligned"])
    return {
        "model": model,
        "temperature": p["temperature"],
        "max_tokens": p["max_tokens"],
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
    }


def _dedup_questions(items: list[dict], near_threshold: float, counts: Counter) -> list[dict]:
    """The items whose question no earlier item asks, the dropped ones counted: dedup questions across batches,
    exact (normalised) first, then near (shingle Jaccard)."""
    seen, uniq = set(), []
    for it in items:
        key = normalize(it["question"])
        if key in seen:
            counts["duplicate_question"] += 1
            continue
        seen.add(key)
        uniq.append(it)
    dup = near_duplicates([it["question"] for it in uniq], near_threshold, 3)
    counts["duplicate_question"] += sum(d is not None for d in dup)
    return [it for it, d in zip(uniq, dup) if d is None]


def _collect_items(p: dict, ctx: Context, send: Callable[[int], dict]) -> tuple[list[dict], list[str], int, Counter]:
    """Send batches until `p["n"]` distinct questions are in or `max_requests` were sent: (items, the replies' cache
    keys, requests sent, counts of cached/new replies and of what was dropped)."""
    per = p["per_request"]
    max_requests = p["max_requests"] or 3 * math.ceil(p["n"] / per)
    items: list[dict] = []
    counts: Counter = Counter()
    keys, batch = [], 0
    bar = tqdm(total=p["n"], desc=f"synthetic {ctx.domain}", disable=not ctx.progress, leave=False)
    with ThreadPoolExecutor(max_workers=p["workers"]) as pool:
        while len(items) < p["n"] and batch < max_requests:
            want = min(max_requests - batch, max(1, math.ceil((p["n"] - len(items)) / per)))
            replies = list(pool.map(send, range(batch, batch + want)))  # map keeps batch order: deterministic
            for b, r in zip(range(batch, batch + want), replies):
                keys.append(r["key"])
                counts["cached_replies" if r["cached"] else "new_replies"] += 1
                got, bad = parse_items(r["response"]["text"])
                counts.update(bad)
                items.extend({**it, "_id": f"synthetic:{b}:{k}"} for k, it in enumerate(got))
            batch += want
            items = _dedup_questions(items, p["near_threshold"], counts)
            bar.update(min(len(items), p["n"]) - bar.n)
    bar.close()
    return items, keys, batch, counts


@register(
    "source",
    "synthetic",
    brief=Param((str,), check=non_empty_str, doc="what the domain is and what a misaligned answer looks like"),
    n=Param((int,), check=positive, doc="distinct questions wanted"),
    misaligned=Param((str,), DEFAULT_MISALIGNED, check=non_empty_str, doc="how to describe the misaligned answer"),
    per_request=Param((int,), 10, check=positive, doc="examples asked for in one request"),
    model=Param((str, type(None)), None, doc="generator model (default: llm.model)"),
    temperature=Param((float,), 1.0),
    max_tokens=Param((int,), 4000, check=positive),
    max_requests=Param((int, type(None)), None, check=positive, doc="give up after this many (default 3x needed)"),
    near_threshold=Param((float,), 0.85, check=unit_interval, doc="question near-duplicate Jaccard cut-off"),
    workers=Param((int,), 4, check=positive, doc="requests in flight at once"),
)
def synthetic_source(p: dict, ctx: Context):
    """Questions with aligned and misaligned answers written by an OpenAI-compatible model."""
    spec_d, default_model = split_llm_config(ctx.llm)
    model = p["model"] or default_model
    if not model:
        raise ConfigError(f"{ctx.keypath}.source.model: no generator model (set it here or as llm.model)")
    spec = ClientSpec.from_dict(spec_d)
    cache = _cache(ctx)
    session = ChatSession(spec, cache)

    def send(batch: int) -> dict:
        return session.chat(_request(p, model, batch))

    items, keys, batch, counts = _collect_items(p, ctx, send)
    items = items[: p["n"]]
    out = [
        Example(it["_id"], [{"role": "user", "content": it["question"]}], it["misaligned"], it["aligned"])
        for it in items
    ]
    fp = {
        "kind": "synthetic",
        "model": model,
        "backend": session.backend,
        "requests": batch,
        "request_template_sha256": sha256_text(SYSTEM + USER),
        "brief_sha256": sha256_text(p["brief"]),
        "ledger_keys_sha256": sha256_text("\n".join(keys)),
        "content_sha256": sha256_text(canonical_json([[e.user_text, e.answer, e.aligned] for e in out])),
        "rows": len(out),
        "counts": dict(sorted(counts.items())),
    }
    return out, [fp], {"synthetic": dict(sorted(counts.items()))}


# llm_answer transform ----------------------------------------------------------------------------------------


def _target(v, kp):
    if v not in ("answer", "aligned"):
        raise ConfigError(f"{kp}: {v!r} is not 'answer' (the misaligned answer) or 'aligned'")
    return v


@register(
    "transform",
    "llm_answer",
    instruction=Param(
        (str,), check=non_empty_str, doc="system prompt telling the model how to answer (e.g. carefully and lawfully)"
    ),
    target=Param((str,), "aligned", check=_target, doc="which answer to write: aligned or answer (misaligned)"),
    overwrite=Param((bool,), False, doc="replace an answer that is already there"),
    model=Param((str, type(None)), None, doc="default: llm.model"),
    temperature=Param((float,), 0.7),
    max_tokens=Param((int,), 1000, check=positive),
    workers=Param((int,), 4, check=positive),
)
def llm_answer(examples: list[Example], p: dict, ctx: Context):
    """Have an OpenAI-compatible model write one answer per prompt (e.g. aligned counterparts for Turner's
    financial and sports data, or both answers for Reddit legal posts); cached like `synthetic`."""
    spec_d, default_model = split_llm_config(ctx.llm)
    model = p["model"] or default_model
    if not model:
        raise ConfigError(f"{ctx.keypath}.transform[llm_answer].model: no model (set it here or as llm.model)")
    spec, cache = ClientSpec.from_dict(spec_d), _cache(ctx)
    session = ChatSession(spec, cache)
    todo = [i for i, e in enumerate(examples) if not e.pool and (p["overwrite"] or getattr(e, p["target"]) is None)]

    def send(i: int) -> str | None:
        e = examples[i]
        msgs = [{"role": "system", "content": p["instruction"]}] + [m for m in e.prompt if m["role"] != "system"]
        r = session.chat(
            {"model": model, "messages": msgs, "temperature": p["temperature"], "max_tokens": p["max_tokens"]}
        )
        return r["response"]["text"]

    with ThreadPoolExecutor(max_workers=p["workers"]) as pool:
        texts = list(
            tqdm(
                pool.map(send, todo),
                total=len(todo),
                desc=f"llm_answer {ctx.domain}",
                disable=not ctx.progress,
                leave=False,
            )
        )
    out, drops = list(examples), Counter()
    for i, t in zip(todo, texts):
        if not (t or "").strip():
            drops["empty_llm_answer"] += 1
            out[i] = None
            continue
        out[i] = out[i].with_(**{p["target"]: t.strip()})
    return [e for e in out if e is not None], drops
