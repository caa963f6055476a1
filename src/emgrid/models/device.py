"""Where a model runs and in what precision: the dtype names a config may use (checked without torch) and the device
a job loads onto. torch is imported inside the functions, so that importing emgrid.models stays cheap."""

from __future__ import annotations

from emgrid.errors import ConfigError

#: The dtype names a config may use -> torch's name (vLLM takes the same names).
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
DTYPE_NAMES = ("auto",) + tuple(DTYPES)


def resolve_dtype(dtype: str):
    """torch's dtype for a config's name ("auto" passes through: transformers then uses the checkpoint's)."""
    import torch

    if dtype == "auto":
        return "auto"
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; allowed: auto, {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name() -> str:
    """What a job ran on, for its metrics (GPU-hours calibration is per device type): the GPU's name, else "cpu"."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
