"""Generation's provider layer, shaped like the judge's (emgrid.judge.backends): one method shape for every
backend, a typed result, and a registry by name.

A backend answers planned prompts (`emgrid.generation.plan.plan_prompts`) with their recorded decoding; the rows are
built in one place (`Answers.rows`), so judging and aggregation cannot tell the backends apart. Its factory checks
what it can before any work (a missing vllm, an API setting it cannot send) and loads no model.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from emgrid.registry import Registry
from emgrid.generation.plan import GenerateSpec, PromptItem

KEY = "generate.backend"


@dataclass(frozen=True)
class GenerationJob:
    """One generate job as every backend receives it; each reads what applies to it.

    `finetuned` is the cell's finetune output: the LoRA adapter folder of a local model (hf, vllm) or the API
    finetune's record, finetune.json (openai); None for the base cell. `steer(model)` (hf only) returns a context
    manager active while every answer is generated (emgrid.steering). `ledger_dir` (openai) is the response cache's
    folder; `client` an API client to use instead of the manifest's (tests)."""

    manifest_path: str | Path
    finetuned: str | Path | None
    model: str
    cell: str
    qset: str
    steer: Callable[[Any], AbstractContextManager] | None = None
    ledger_dir: str | Path | None = None
    client: Any = None
    progress: bool = True


@dataclass(frozen=True)
class Answers:
    """A backend's answers to planned prompts, in their order: the stripped texts and each one's `decoding` (the
    effective RECORDED_DECODING values it sampled with)."""

    texts: list[str]
    decodings: list[dict]

    def rows(self, items: list[PromptItem]) -> list[dict]:
        """Answer rows (docs/design.md format): each planned row plus its answer and decoding."""
        return [{**it.row, "answer": a, "decoding": d} for it, a, d in zip(items, self.texts, self.decodings)]


class GenerationBackend(Protocol):
    """What every generation backend provides (constructed by a factory registered under its name)."""

    name: str

    def answer(self, items: list[PromptItem]) -> Answers:
        """Answer every planned prompt, in order. Raises on failures that must stop the job."""
        ...


BackendFactory = Callable[[GenerateSpec, GenerationJob], GenerationBackend]
BACKENDS: Registry[BackendFactory] = Registry(KEY)
#: Class decorator: `factory(spec, job)` builds the backend `name`.
register_backend = BACKENDS.register


def registered() -> tuple[str, ...]:
    """The registered backends' names."""
    return BACKENDS.names()


def make_backend(name: str, spec: GenerateSpec, job: GenerationJob) -> GenerationBackend:
    return BACKENDS.get(name)(spec, job)
