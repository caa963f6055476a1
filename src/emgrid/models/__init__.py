"""Models: built on the spot (tiny, SmolLM2), kept in a content-addressed weights cache, checked as config specs,
recorded in a manifest and loaded from it. Importing the package stays cheap (no torch, transformers or peft: the
functions that need them import them), so config checks and the planner can use it.

- `build`: the tiny random Qwen2 and the SmolLM2 GGUF conversion.
- `cache`: the weights cache (`cached_weights`, named by `weights_identity`).
- `spec`: model spec checks and what this machine can tell about a model without loading it.
- `manifest`: `prepare_model` and the manifest every later stage reads.
- `load`: tokenizer and model from a manifest.
- `device`: dtype names and the device a job runs on.
"""

from emgrid.models.build import SMOLLM2_GGUF, build_tiny_model, smollm2_gguf_path
from emgrid.models.cache import WEIGHTS_FORMAT, cached_weights, convert_smollm2, weights_identity
from emgrid.models.device import DTYPE_NAMES, DTYPES, default_device, device_name, resolve_dtype
from emgrid.models.load import load_model, load_tokenizer, offline_if_local, source_args
from emgrid.models.manifest import (
    api_manifest,
    base_manifest,
    is_api_manifest,
    prepare_model,
    read_manifest,
    restore_manifest,
)
from emgrid.models.spec import (
    API_KEYS,
    API_SOURCES,
    SMOLLM2_LAYERS,
    SOURCES,
    SPEC_KEYS,
    TINY_KEYS,
    check_model_spec,
    known_hf_config,
    known_layer_count,
    model_spec_notes,
)

__all__ = [
    "API_KEYS",
    "API_SOURCES",
    "DTYPES",
    "DTYPE_NAMES",
    "SMOLLM2_GGUF",
    "SMOLLM2_LAYERS",
    "SOURCES",
    "SPEC_KEYS",
    "TINY_KEYS",
    "WEIGHTS_FORMAT",
    "api_manifest",
    "base_manifest",
    "build_tiny_model",
    "cached_weights",
    "check_model_spec",
    "convert_smollm2",
    "default_device",
    "device_name",
    "is_api_manifest",
    "known_hf_config",
    "known_layer_count",
    "load_model",
    "load_tokenizer",
    "model_spec_notes",
    "offline_if_local",
    "prepare_model",
    "read_manifest",
    "resolve_dtype",
    "restore_manifest",
    "smollm2_gguf_path",
    "source_args",
    "weights_identity",
]
