"""The vLLM generation backend (`generate.backend: vllm`): the same answer rows as the HF path, decoded by vLLM.

Why: on a GPU, vLLM's continuous batching and paged KV cache decode many times faster than HF `generate` with padded
batches. One engine per job (`enable_lora`), the cell's adapter as a LoRARequest (unmerged, as the HF path uses it).
The prompts are the HF path's, token for token (the same chat template rendering, no special tokens added), and the
sampling settings are the same `decoding_fields`, so rows differ only in the sampled text. Each answer gets its own
seed from `generate.seed` and the row's key, so an answer does not depend on which others share the engine.

vLLM is not a dependency of the default (CPU) install: it pins its own CUDA torch and an older transformers. Install
it in its own environment on the GPU machine (`make install-vllm`; docs/gpu.md). `check_installed` is called by
the config check before any job, `check_gpu` by the job itself (a submit host has no GPU).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from emgrid.errors import ConfigError

KEY = "generate.backend"
# Decoding fields vLLM's SamplingParams has no counterpart for: they must be at their neutral value.
UNSUPPORTED = ("typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "encoder_repetition_penalty")
UNSUPPORTED += ("length_penalty", "num_beams", "num_return_sequences")


def check_installed(where: str = KEY) -> None:
    """Raise ConfigError naming the key when vllm cannot be imported in this environment."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"config key '{where}' is 'vllm' but the vllm package is not installed in this environment "
            f"({sys.executable}); build its own environment on a GPU machine (make install-vllm, see docs/gpu.md) "
            "and run Snakemake from it, or set it to 'hf'"
        )


def check_gpu(where: str = KEY) -> None:
    """Raise ConfigError naming the key when no CUDA GPU is visible: vLLM has no CPU path in its CUDA wheel."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"config key '{where}' is 'vllm' but no CUDA GPU is visible to this job; vLLM needs one "
            "(run the generate jobs on a GPU node, or set it to 'hf')"
        )


def sampling_kwargs(fields: dict[str, Any], stop_ids: Sequence[int], seed: int) -> dict[str, Any]:
    """vLLM SamplingParams arguments for one answer from the HF path's `decoding_fields` (same values)."""
    for key in UNSUPPORTED:
        from emgrid.generate import NEUTRAL_DECODING

        if fields[key] != NEUTRAL_DECODING[key]:
            raise ConfigError(
                f"config key '{KEY}' is 'vllm' but decoding field {key}={fields[key]!r} (from the checkpoint's "
                "generation_config.json: generate.inherit_checkpoint_defaults) has no vLLM counterpart; "
                "use backend 'hf' or inherit_checkpoint_defaults: false"
            )
    return {
        "n": 1,
        "temperature": fields["temperature"] if fields["do_sample"] else 0.0,
        "top_p": float(fields["top_p"]),
        "top_k": int(fields["top_k"]) or -1,  # HF's 0 = no cut; vLLM's -1
        "min_p": float(fields["min_p"]),
        "repetition_penalty": float(fields["repetition_penalty"]),
        "max_tokens": int(fields["max_new_tokens"]),
        "min_tokens": int(fields["min_new_tokens"]),
        "stop_token_ids": list(stop_ids),
        "seed": int(seed),
        "skip_special_tokens": True,
    }


def lora_request(adapter_dir: str | Path | None, name: str):
    """The cell's adapter as a vLLM LoRARequest (None for a base cell)."""
    if adapter_dir is None:
        return None
    from vllm.lora.request import LoRARequest

    return LoRARequest(name, 1, str(adapter_dir))


def _adapter_rank(adapter_dir: str | Path | None) -> int:
    if adapter_dir is None:
        return 8
    return int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))["r"])


def make_engine(manifest_path: str | Path, adapter_dir: str | Path | None, dtype: str, seed: int):
    """One vLLM engine for the job: the manifest's model, LoRA enabled when the cell has an adapter."""
    from vllm import LLM

    from emgrid.models import DTYPES, read_manifest

    kw: dict[str, Any] = {}
    if adapter_dir is not None:
        kw.update(enable_lora=True, max_lora_rank=max(_adapter_rank(adapter_dir), 8), max_loras=1)
    return LLM(model=read_manifest(manifest_path)["path"], dtype=DTYPES.get(dtype, "auto"), seed=seed, **kw)


def generate_vllm(
    manifest_path: str | Path,
    adapter_dir: str | Path | None,
    prompts: Sequence[Sequence[dict[str, str]]],
    fields: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    *,
    dtype: str = "float32",
    engine_seed: int = 0,
    name: str = "cell",
    engine=None,
) -> list[str]:
    """Answer each conversation prefix with its own decoding fields and seed; stripped texts in input order.
    `engine`: an engine from make_engine to reuse (benchmarks time decoding without the engine start)."""
    from vllm import SamplingParams

    from emgrid.chat import render_prompt
    from emgrid.models import load_tokenizer

    tok = load_tokenizer(manifest_path)
    stop = _stop_ids(manifest_path, tok)
    token_prompts = [
        {"prompt_token_ids": tok(render_prompt(tok, m), add_special_tokens=False)["input_ids"]} for m in prompts
    ]
    params = [SamplingParams(**sampling_kwargs(f, stop, s)) for f, s in zip(fields, seeds)]
    llm = engine or make_engine(manifest_path, adapter_dir, dtype, engine_seed)
    outs = llm.generate(token_prompts, params, lora_request=lora_request(adapter_dir, name), use_tqdm=True)
    return [o.outputs[0].text.strip() for o in outs]


def _stop_ids(manifest_path: str | Path, tok) -> list[int]:
    """The HF path's stop tokens: the tokenizer's eos plus the checkpoint's generation config eos ids."""
    from transformers import GenerationConfig

    from emgrid.generate import stop_token_ids
    from emgrid.models import read_manifest

    try:
        gc = GenerationConfig.from_pretrained(read_manifest(manifest_path)["path"])
    except OSError:  # no generation_config.json
        gc = None
    return stop_token_ids(gc, tok)
