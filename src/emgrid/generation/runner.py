"""generate_answers: one cell's answer rows on one question set, under every trigger condition, whatever the backend.

The backend is chosen here and nowhere else: an API model's source (openai) answers through its API, whatever
`generate.backend` says (the key is not even a param of API models); a steered run decodes with hf (its hooks need
the transformers model); any other run with `generate.backend` (hf or vllm).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Iterable

from emgrid.errors import ConfigError
from emgrid.generation import hf, openai, vllm  # noqa: F401 - the backends register by name
from emgrid.generation.backends import GenerationJob, make_backend
from emgrid.generation.plan import GenerateSpec, plan_prompts
from emgrid.models import is_api_manifest, read_manifest


def backend_name(manifest: dict, spec: GenerateSpec, steered: bool) -> str:
    """The backend that answers for a model with this manifest (see the module docstring)."""
    if is_api_manifest(manifest):
        return manifest["source"]
    return "hf" if steered else spec.backend


def generate_answers(
    manifest_path: str | Path,
    finetuned: str | Path | None,
    questions: Iterable[Any],
    spec: GenerateSpec,
    triggers: dict[str, str],
    model: str,
    cell: str,
    qset: str,
    steer: Callable[[Any], AbstractContextManager] | None = None,
    *,
    ledger_dir: str | Path | None = None,
    client: Any = None,
    progress: bool = True,
) -> list[dict]:
    """Answer rows (docs/design.md format) for a cell's model on one question set, under every trigger condition.

    `finetuned`: the cell's LoRA adapter folder (a local model) or its API finetune's finetune.json (an API model);
    None for the base cell. `steer(model)` returns a context manager active while every answer is generated (e.g. a
    forward hook that adds a direction to the residual stream, `emgrid.steering`); the prompts, sampling and seeding
    stay the same. `ledger_dir` (API models): the response cache's folder; `client`: an API client to use instead of
    the manifest's (tests).
    """
    spec.validate()
    if not triggers:
        raise ConfigError("generate_answers needs at least one condition in 'triggers' (e.g. {'no_trigger': ''})")
    job = GenerationJob(manifest_path, finetuned, model, cell, qset, steer, ledger_dir, client, progress)
    backend = make_backend(backend_name(read_manifest(manifest_path), spec, steer is not None), spec, job)
    items = plan_prompts(questions, spec, triggers, model, cell, qset)
    return backend.answer(items).rows(items)
