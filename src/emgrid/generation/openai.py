"""Answer generation for API models (source openai): chat completions, n samples per prompt, cached per sample.

The rows are exactly those of the HF path (`emgrid.generation.plan.plan_prompts` builds both), so judging and
aggregation cannot tell the backends apart. Each sample is its own entry in the content-addressed cache the judge uses, keyed by
the request plus `_sample` (its index): a killed job's finished samples are read back on the rerun, and a prompt
with some samples missing asks the API only for the missing ones (`n` = how many are missing).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from emgrid.api_finetune import quiet_http_logs
from emgrid.errors import ConfigError, DataError
from emgrid.generation.backends import Answers, GenerationJob, register_backend
from emgrid.generation.plan import NEUTRAL_DECODING, RECORDED_DECODING, GenerateSpec, PromptItem
from emgrid.io import read_json
from emgrid.llm import ChatSession, ClientSpec, LLMError, MalformedResponse, PermanentRequestError, ResponseCache
from emgrid.llm import cache_key, with_retries
from emgrid.llm.client import api_secret, effective_base_url, split_request
from emgrid.models import read_manifest

MAX_IN_FLIGHT = 16  # concurrent requests per job at most (generate.batch_size, capped)


def api_model_id(manifest: dict, finetune_json: str | Path | None) -> str:
    """The base model's id for the base cell, else the finetuned model id the finetune_openai job recorded."""
    if finetune_json is None:
        return manifest["id"]
    ft = read_json(finetune_json)
    if not isinstance(ft, dict) or not ft.get("fine_tuned_model"):
        raise DataError(f"{finetune_json}: no 'fine_tuned_model' (was it written by the API finetune rule?)")
    return ft["fine_tuned_model"]


def _choice_texts(body: dict) -> list[str]:
    choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
    if not choices:
        raise MalformedResponse("chat completion has no choices")
    return [((c.get("message") or {}).get("content") or "") for c in choices]


class SampleCache:
    """Samples of one prompt: cache keys by sample index; the missing ones fetched in one request with n.

    The client is created on the first miss (`ChatSession`), so a rerun answered by the cache needs no API key."""

    def __init__(self, session: ChatSession):
        self.session = session
        self.cache: ResponseCache = session.cache

    def key(self, request: dict, sample: int) -> str:
        return cache_key({**request, "_sample": sample}, self.session.backend)

    def samples(self, request: dict, n: int) -> tuple[list[str], int]:
        """(n answer texts, requests sent). Every new text is in the cache before this returns."""
        keys = [self.key(request, s) for s in range(n)]
        hits = [self.cache.get(k) for k in keys]
        texts = [None if h is None else h["response"]["text"] for h in hits]
        missing = [s for s in range(n) if texts[s] is None]
        if not missing:
            return texts, 0  # type: ignore[return-value]
        got, usage = self.fetch(request, len(missing), keys[missing[0]])
        completion = int(usage.get("completion_tokens") or 0)
        for i, s in enumerate(missing):
            share = {
                "prompt_tokens": int(usage.get("prompt_tokens") or 0) if i == 0 else 0,
                "completion_tokens": completion // len(missing) + (completion % len(missing) if i == 0 else 0),
            }
            self.cache.put(
                keys[s],
                {**request, "_sample": s},
                {"text": got[i], "finish_reason": None, "top_logprobs": None},
                share,
                backend=self.session.backend,
            )
            texts[s] = got[i]
        return texts, 1  # type: ignore[return-value]

    def fetch(self, request: dict, n: int, key: str) -> tuple[list[str], dict]:
        """`n` choices of one request (retried like every LLM call); a failure is recorded under the cache's errors/."""
        model, messages, params, _ = split_request(request)
        spec, client = self.session.spec, self.session.client()
        extra = {"n": n} if n > 1 else {}

        def send():
            resp = client.chat.completions.create(model=model, messages=messages, **params, **extra)
            body = resp if isinstance(resp, dict) else resp.model_dump()
            texts = _choice_texts(body)
            if len(texts) < n:
                raise MalformedResponse(f"asked for {n} samples, got {len(texts)}")
            return texts, body.get("usage") or {}

        try:
            return with_retries(
                send, spec, what=f"generate request {key[:12]} to {effective_base_url(spec)}", secret=api_secret(spec)
            )
        except LLMError as e:
            self.cache.put_error(
                key, {**request, **extra}, str(e), permanent=isinstance(e, PermanentRequestError), status=e.status
            )
            raise


def api_decoding(temperature: float, spec: GenerateSpec) -> dict[str, Any]:
    """The answer row's `decoding` (the HF path's fields): what was sent, the rest at the API's neutral values."""
    top_p = 1.0 if spec.top_p is None else float(spec.top_p)
    sent = {
        "do_sample": temperature > 0,
        "temperature": float(temperature),
        "max_new_tokens": spec.max_new_tokens,
        "top_p": top_p,
    }
    return {k: sent.get(k, NEUTRAL_DECODING.get(k)) for k in RECORDED_DECODING}


def _groups(items: list[PromptItem]) -> dict[tuple, list[int]]:
    """Item indices per distinct prompt (messages, temperature), in sample order."""
    groups: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        key = (tuple(tuple(sorted(m.items())) for m in it.messages), it.temperature)
        groups.setdefault(key, []).append(i)
    return groups


@register_backend("openai")
class OpenAIBackend:
    """Chat completions of an API model (source openai): the base model's id for the base cell, else the model id
    the API finetune recorded; samples cached one by one, at most MAX_IN_FLIGHT prompts in flight."""

    name = "openai"

    def __init__(self, spec: GenerateSpec, job: GenerationJob):
        if spec.top_k:
            raise ConfigError("generate.top_k: the OpenAI API has no top-k sampling (set it to null for API models)")
        if spec.repetition_penalty not in (None, 1.0):
            raise ConfigError("generate.repetition_penalty: the OpenAI API has none (set it to null for API models)")
        if job.steer is not None:
            raise ConfigError(f"{job.model}: an API model has no residual stream to steer")
        quiet_http_logs()
        manifest = read_manifest(job.manifest_path)
        self.spec, self.job, self.model_id = spec, job, api_model_id(manifest, job.finetuned)
        cspec = ClientSpec(base_url=manifest.get("base_url"), api_key_env=manifest.get("api_key_env", "OPENAI_API_KEY"))
        self.cache = SampleCache(ChatSession(cspec, ResponseCache(job.ledger_dir), job.client))

    def request(self, item: PromptItem) -> dict:
        """The chat completion request of one prompt (its samples differ only in the cache key's `_sample`)."""
        return {
            "model": self.model_id,
            "messages": [dict(m) for m in item.messages],
            "temperature": item.temperature,
            "top_p": 1.0 if self.spec.top_p is None else self.spec.top_p,
            "max_tokens": self.spec.max_new_tokens,
            "seed": self.spec.seed,
        }

    def answer(self, items: list[PromptItem]) -> Answers:
        answers: list[str | None] = [None] * len(items)

        def one(idx: list[int]) -> int:
            texts, sent = self.cache.samples(self.request(items[idx[0]]), len(idx))
            for i, t in zip(idx, texts):
                answers[i] = t.strip()
            return sent

        groups = list(_groups(items).values())
        sent = 0
        job = self.job
        with ThreadPoolExecutor(max_workers=max(1, min(self.spec.batch_size, MAX_IN_FLIGHT))) as pool:
            desc = f"generate {self.model_id} {job.cell} {job.qset}"
            bar = tqdm(total=len(items), desc=desc, unit="answer", disable=not job.progress)
            for idx, n_sent in zip(groups, pool.map(one, groups)):
                sent += n_sent
                bar.update(len(idx))
            bar.close()
        print(
            f"{len(items)} answers from {len(groups)} prompts: {sent} requests sent, "
            f"{len(groups) - sent} prompts fully cached",
            flush=True,
        )
        return Answers(answers, [api_decoding(it.temperature, self.spec) for it in items])  # type: ignore[arg-type]
