"""Loading a prepared model and its tokenizer from its manifest; transformers and peft are imported inside the
functions, so that importing emgrid.models stays cheap."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from emgrid.errors import ModelSourceError
from emgrid.models.device import default_device, resolve_dtype
from emgrid.models.manifest import base_manifest, read_manifest


@contextlib.contextmanager
def offline_if_local(local: bool) -> Iterator[None]:
    """Local folders must never trigger a hub lookup; hub ids keep whatever network policy the caller has."""
    if not local:
        yield
        return
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def source_args(manifest: dict) -> tuple[str, dict]:
    local = manifest.get("path_kind", "local") == "local"
    return manifest["path"], ({"local_files_only": True} if local else {})


def load_tokenizer(manifest_path: str | Path, padding_side: str = "left"):
    """Tokenizer of the manifest's model; left padding by default (batched generation needs it)."""
    from transformers import AutoTokenizer

    m = read_manifest(manifest_path)
    path, kw = source_args(m)
    with offline_if_local(bool(kw)):
        tok = AutoTokenizer.from_pretrained(path, **kw)
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    manifest_path: str | Path,
    adapter_dir: str | Path | None = None,
    dtype: str = "float32",
    device: str | None = None,
    train: bool = False,
    base: bool = False,
):
    """Base model (+ PEFT adapter, unmerged) in eval mode on `device` (default: cuda if available, else cpu).

    `base=True` loads the manifest's pretrained base model (`base_id`) instead of the model itself.
    """
    from transformers import AutoModelForCausalLM

    m = base_manifest(manifest_path) if base else read_manifest(manifest_path)
    if m is None:
        raise ModelSourceError(f"{manifest_path}: the model has no base model (set base_id in its model spec)")
    path, kw = source_args(m)
    device = device or default_device()
    with offline_if_local(bool(kw)):
        # device_map puts weights straight on the GPU: a 7B model never has to fit in host RAM in fp32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype), device_map=device, **kw)
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ModelSourceError(f"adapter dir {adapter_dir} has no adapter_config.json")
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=train)
    model.to(device)
    return model.train() if train else model.eval()
