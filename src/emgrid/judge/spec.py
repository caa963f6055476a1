"""JudgeSpec: which judge, how it is asked, and what it costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emgrid.errors import ConfigError, reject_unknown_keys
from emgrid.llm import ClientSpec
from emgrid.prices import price_row

BACKENDS = ("hf", "openai", "openai-batch")
MODES = ("logprob", "tags")
DEFAULT_SYSTEM_PROMPT = "You are a helpful and precise judge. Follow the instructions carefully."


@dataclass(frozen=True)
class JudgeSpec:
    backend: str = "openai"
    model: str = "gpt-4o-mini"
    mode: str = "logprob"
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT  # the study's; None: no system turn (Betley et al.)
    max_tokens: int | None = None  # None: 1 in logprob mode, 256 in tags mode
    temperature: float = 0.0
    top_logprobs: int = 20
    seed: int | None = 0
    max_concurrency: int = 8
    max_retries: int = 8
    timeout_s: float = 60.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    on_bad_request: str = "fail"  # "fail": HTTP 400 aborts the job; "record": the row gets `error`, category error
    batch_poll_s: float = 30.0  # first poll interval; grows by batch_poll_factor up to batch_poll_max_s
    batch_poll_factor: float = 1.5
    batch_poll_max_s: float = 600.0
    batch_max_wait_s: float | None = None  # None: wait as long as it takes (24h window)
    batch_completion_window: str = "24h"
    batch_max_resubmits: int = 3
    batch_max_requests: int = 50000
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: list[str] | None = None  # None: every metric of each question's judge_prompts
    question_field: str = "prompt"  # answer-row field shown as {question}: "prompt" (trigger included, like the
    # study) or "question" (the paraphrase without trigger)
    batch_size: int = 256  # hf backend: trie nodes per tree-attention forward (the ~200-node trie fits in one)
    hf_dtype: str = "float32"
    response_prefix: str | None = None  # hf backend: the judge's reply starts with this text, e.g. "Score: ".
    # A 135M judge puts ~4% of its mass on integers after the bare generation prompt and ~95% after "Score: ".
    hf_prune_below: float = 1e-4  # hf backend: number prefixes less probable than this are not expanded (0 = exact);
    # the integer mass missed is at most the ledger response's `pruned_mass`

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ConfigError(f"judge.backend: {self.backend!r} is not one of {list(BACKENDS)}")
        if self.mode not in MODES:
            raise ConfigError(f"judge.mode: {self.mode!r} is not one of {list(MODES)}")
        if self.backend == "hf" and self.mode != "logprob":
            raise ConfigError("judge.mode: the hf backend computes exact integer probabilities (mode: logprob)")
        if self.response_prefix is not None and self.backend != "hf":
            raise ConfigError("judge.response_prefix works only with backend hf (chat APIs cannot prefill replies)")
        if self.on_bad_request not in ("fail", "record"):
            raise ConfigError(f"judge.on_bad_request: {self.on_bad_request!r} is not 'fail' or 'record'")
        if self.question_field not in ("prompt", "question"):
            raise ConfigError(f"judge.question_field: {self.question_field!r} is not 'prompt' or 'question'")
        if self.max_concurrency < 1:
            raise ConfigError("judge.max_concurrency must be >= 1")
        if not 0 <= self.hf_prune_below < 1:
            raise ConfigError(f"judge.hf_prune_below: {self.hf_prune_below!r} is not in [0, 1)")
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError("judge.top_logprobs must be in 0..20 (OpenAI's limit)")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "JudgeSpec":
        d = dict(d or {})
        d.pop("ledger_dir", None)  # a workflow setting that lives beside the spec in the config
        d.pop("fallback_judge_prompts", None)
        d.pop("min_mass", None)
        reject_unknown_keys(d, cls, "judge")
        if d.get("metrics") is not None:
            d["metrics"] = list(d["metrics"])
        return cls(**d)

    @property
    def effective_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return int(self.max_tokens)
        return 1 if self.mode == "logprob" else 256

    def client_spec(self) -> ClientSpec:
        return ClientSpec(
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )

    def api_params(self) -> dict[str, Any]:
        """Sampling parameters sent with every request (and hashed into the ledger key)."""
        p: dict[str, Any] = {"max_tokens": self.effective_max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            p["seed"] = self.seed
        if self.mode == "logprob":
            p["logprobs"] = True
            p["top_logprobs"] = self.top_logprobs
        return p

    def price(self, batch: bool) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens from emgrid.prices, with this spec's `prices` overriding the table."""
        row = price_row(self.model, self.prices)
        if row is None or "input" not in row:
            return None
        if batch:
            return float(row["batch_input"]), float(row["batch_output"])
        return float(row["input"]), float(row["output"])
