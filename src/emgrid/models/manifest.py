"""Model preparation: `prepare_model` writes `manifest.json`, the one file later stages read to find weights,
tokenizer and base model, so a cell never depends on how its model was obtained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emgrid.errors import ConfigError, ModelSourceError
from emgrid.io import read_json, write_json
from emgrid.models.build import SMOLLM2_GGUF
from emgrid.models.cache import local_weights, safetensors_params
from emgrid.models.spec import API_SOURCES, TINY_KEYS, check_model_spec, is_local


def _resolve_ref(ref: str | None, key: str) -> str | None:
    """Local paths must exist and become absolute; anything else is a hub id recorded as-is (loaded on the cluster)."""
    if ref is None:
        return None
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"model spec key '{key}' must be a non-empty string")
    if is_local(ref):
        p = Path(ref).expanduser()
        if not p.exists():
            raise ModelSourceError(f"model spec key '{key}': local path {ref} does not exist")
        return str(p.resolve())
    return ref


def prepare_model(spec: dict[str, Any], out_dir: str | Path, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Build/convert/record the model described by `spec` and write `out_dir/manifest.json` (returned).

    spec: {"source": "tiny"|"smollm2"|"hf"|"openai", "id": hub id or local path (hf) or API model id (openai),
    "base_id": optional base model for membership inference, tiny size keys (seed, hidden, intermediate, layers,
    heads, kv_heads, vocab_size), openai: base_url, api_key_env}.
    `cache_dir`: where built or converted weights are kept across runs (`cached_weights`); None = `out_dir/hf`.
    """
    out_dir = Path(out_dir)
    check_model_spec(spec)
    source = spec["source"]
    if source in API_SOURCES:
        manifest = api_manifest(spec)
        write_json(out_dir / "manifest.json", manifest)
        return manifest
    base_path = _resolve_ref(spec.get("base_id"), "base_id")
    manifest: dict[str, Any] = {"source": source, "base_path": base_path}
    if source == "tiny":
        sizes = {k: spec[k] for k in TINY_KEYS if k in spec}
        manifest.update(
            path_kind="local", chat_template="own", tiny=sizes, **local_weights(source, sizes, out_dir, cache_dir)
        )
    elif source == "smollm2":
        manifest.update(
            path_kind="local",
            chat_template="overridden",
            gguf=SMOLLM2_GGUF,
            **local_weights(source, {}, out_dir, cache_dir),
        )
    else:
        ref = _resolve_ref(spec["id"], "id")
        local = is_local(ref)
        manifest.update(
            path=ref,
            path_kind="local" if local else "hub",
            chat_template="own",
            n_params=safetensors_params(Path(ref)) if local else None,
        )
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def api_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    """An API model is only its id and endpoint: the key stays in the environment (only its variable's name here)."""
    return {
        "source": spec["source"],
        "id": spec["id"],
        "path": spec["id"],
        "path_kind": "api",
        "base_url": spec.get("base_url"),
        "api_key_env": spec.get("api_key_env", "OPENAI_API_KEY"),
        "base_path": None,
        "chat_template": "api",
        "n_params": None,
    }


def is_api_manifest(manifest: dict[str, Any]) -> bool:
    return manifest.get("source") in API_SOURCES


def read_manifest(manifest_path: str | Path) -> dict[str, Any]:
    """Manifest with `path` resolved: relative local paths are relative to the manifest's folder."""
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise ModelSourceError(f"model manifest {manifest_path} not found (run prepare_model first)")
    m = read_json(manifest_path)
    for key in ("source", "path"):
        if key not in m:
            raise ModelSourceError(f"{manifest_path}: manifest lacks key '{key}'")
    if m.get("path_kind", "local") == "local" and not Path(m["path"]).is_absolute():
        m["path"] = str((manifest_path.parent / m["path"]).resolve())
    if m.get("weights_key") and not Path(m["path"]).is_dir():
        raise ModelSourceError(
            f"{manifest_path}: model weights {m['path']} are gone (was the model cache deleted?); start snakemake "
            "again: it rebuilds them when it starts, and reruns nothing for them"
        )
    return m


def restore_manifest(spec: dict[str, Any], out_dir: str | Path, cache_dir: str | Path | None) -> str | None:
    """Bring back a deleted `out_dir/manifest.json`, or the cached weights it points at; what was done, or None.

    Why here and not in the prepare_model job: the jobs that used the model list the manifest as an input, and a
    job that has to run makes Snakemake rerun everything downstream of it, so rebuilding a deleted cache through
    the job would retrain every cell of the model. The weights are content-addressed by the model's spec
    (`cached_weights`), so this writes the very manifest the job wrote (same bytes: its checksum tells Snakemake
    that nothing changed) and rebuilds the very weights. The caller decides when the manifest is worth restoring
    (the model has results); missing weights are always rebuilt, as every job loading the model needs them.
    """
    manifest_path = Path(out_dir) / "manifest.json"
    if manifest_path.is_file():
        m = read_json(manifest_path)
        path = Path(m.get("path", ""))
        if not m.get("weights_key") or (path if path.is_absolute() else manifest_path.parent / path).is_dir():
            return None
        what = f"model weights of {manifest_path} rebuilt into the cache"
    else:
        what = f"{manifest_path} written again"
    prepare_model(spec, out_dir, cache_dir=cache_dir)
    return what


def base_manifest(manifest_path: str | Path) -> dict[str, Any] | None:
    """The manifest's pretrained base model (`base_path`, from the spec's `base_id`) as a manifest of its own, or
    None when the model has none. Membership inference compares the instruct model with it."""
    m = read_manifest(manifest_path)
    ref = m.get("base_path")
    if not ref:
        return None
    return {"source": "hf", "path": ref, "path_kind": "local" if is_local(ref) else "hub"}
