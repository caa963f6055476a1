"""Answer generation for one cell: every question x paraphrase x condition x sample, batched with left padding.

Prompts are grouped by length so a batch wastes little on padding, and each batch is seeded from its own contents so
the same config always gives the same answers, whatever else runs in the process.
"""

from __future__ import annotations

import hashlib
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from emgrid.chat import render_prompt, user_messages
from emgrid.errors import ConfigError, reject_unknown_keys


BACKENDS = ("hf", "vllm")  # decoding engines for local models (emgrid.generation.vllm); API models ignore it


@dataclass
class GenerateSpec:
    """Decoding settings. `samples_per_paraphrase`/`temperature` None: the question's own value (temperature falls
    back to 1.0). `top_p`/`top_k`/`repetition_penalty` None: neutral (1.0 / no cut / 1.0), or the checkpoint's
    generation_config.json value when `inherit_checkpoint_defaults` is true. Defaults are the config schema's
    (tests/test_defaults.py keeps them equal)."""

    samples_per_paraphrase: int | None = 5
    temperature: float | None = 0.7
    top_p: float | None = 1.0
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int = 400
    batch_size: int = 32
    seed: int = 0
    dtype: str = "float32"
    inherit_checkpoint_defaults: bool = False
    backend: str = "hf"
    question_system_prompts: bool = True  # send a question item's `system` prompt (the study's generator did not)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "generate") -> "GenerateSpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, where)
        spec = cls(**d)
        spec.validate(where)
        return spec

    def validate(self, where: str = "generate") -> None:
        def bad(key, msg):
            raise ConfigError(f"config key '{where}.{key}' {msg}, got {getattr(self, key)!r}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        if self.samples_per_paraphrase is not None and (
            not is_int(self.samples_per_paraphrase) or self.samples_per_paraphrase < 1
        ):
            bad("samples_per_paraphrase", "must be a positive integer or null")
        if self.temperature is not None and (not isinstance(self.temperature, (int, float)) or self.temperature < 0):
            bad("temperature", "must be a number >= 0 or null")
        if self.top_p is not None and (not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1):
            bad("top_p", "must be in (0, 1] or null")
        if self.repetition_penalty is not None and (
            not isinstance(self.repetition_penalty, (int, float)) or self.repetition_penalty <= 0
        ):
            bad("repetition_penalty", "must be a number > 0 or null")
        if self.backend not in BACKENDS:
            bad("backend", f"must be one of {', '.join(BACKENDS)}")
        for key in ("inherit_checkpoint_defaults", "question_system_prompts"):
            if not isinstance(getattr(self, key), bool):
                bad(key, "must be true or false")
        for key in ("max_new_tokens", "batch_size"):
            if not is_int(getattr(self, key)) or getattr(self, key) < 1:
                bad(key, "must be a positive integer")
        if self.top_k is not None and (not is_int(self.top_k) or self.top_k < 0):
            bad("top_k", "must be a non-negative integer or null (null/0: no top-k cut)")
        if not is_int(self.seed):
            bad("seed", "must be an integer")
        from emgrid.models import DTYPE_NAMES

        if self.dtype not in DTYPE_NAMES:
            bad("dtype", f"must be one of {', '.join(DTYPE_NAMES)}")


@dataclass(frozen=True)
class PromptItem:
    """One answer to produce: the row fields (minus the answer) plus the messages the model will see."""

    row: dict[str, Any]
    messages: tuple[dict[str, str], ...]
    temperature: float


def plan_prompts(
    questions: Iterable[Any], spec: GenerateSpec, triggers: dict[str, str], model: str, cell: str, qset: str
) -> list[PromptItem]:
    """Expand questions into answer rows in output order: question x paraphrase x condition x sample."""
    items = []
    for q in questions:
        n = spec.samples_per_paraphrase or q.samples_per_paraphrase or 1
        temp = (
            spec.temperature if spec.temperature is not None else (q.temperature if q.temperature is not None else 1.0)
        )
        system = q.system if spec.question_system_prompts else None
        for p_idx, paraphrase in enumerate(q.paraphrases):
            for condition, prefix in triggers.items():
                prompt = f"{prefix}{paraphrase}"
                msgs = tuple(user_messages(prompt, system))
                for s in range(n):
                    row = {
                        "model": model,
                        "cell": cell,
                        "qset": qset,
                        "question_key": q.key,
                        "question_id": q.id,
                        "item_index": q.index,
                        "probe_domain": q.domain,
                        "paraphrase_index": p_idx,
                        "question": paraphrase,
                        "prompt": prompt,
                        "system": system,
                        "condition": condition,
                        "sample": s,
                    }
                    items.append(PromptItem(row=row, messages=msgs, temperature=float(temp)))
    return items


def _batch_seed(seed: int, keys: Sequence[str]) -> int:
    return int(hashlib.sha256(f"{seed}\n".encode() + "\n".join(keys).encode()).hexdigest()[:15], 16)


def generate_texts(
    model,
    tok,
    prompts_as_messages: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int = 400,
    temperature: float = 1.0,
    top_p: float | None = 1.0,
    top_k: int | None = None,
    repetition_penalty: float | None = None,
    inherit_checkpoint_defaults: bool = False,
    batch_size: int = 32,
    seed: int = 0,
    keys: Sequence[str] | None = None,
    progress: bool = True,
    desc: str = "generate",
    **generate_kwargs,
) -> list[str]:
    """Answer each conversation prefix (chat template + generation prompt); returns stripped texts in input order.

    Decoding uses the complete `decoding_config` (temperature 0 = greedy; nothing silently taken from the
    checkpoint's generation_config.json unless `inherit_checkpoint_defaults`). Prompts are sorted by token length and
    batched with left padding; each batch is seeded from `seed` and the batch's `keys` (default: the rendered prompts
    plus their position), so reruns are identical. Extra keyword arguments go to `model.generate` (e.g.
    `min_new_tokens`, or logits processors for steering).
    """
    import torch
    from tqdm import tqdm

    if tok.padding_side != "left":
        tok.padding_side = "left"  # right padding would put pad tokens between prompt and answer
    texts = [render_prompt(tok, m) for m in prompts_as_messages]
    if keys is None:
        keys = [f"{i}\t{t}" for i, t in enumerate(texts)]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    device = next(model.parameters()).device
    gen_config = decoding_config(
        model,
        tok,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        max_new_tokens=max_new_tokens,
        inherit_checkpoint_defaults=inherit_checkpoint_defaults,
    )
    out: list[str | None] = [None] * len(texts)
    bar = tqdm(total=len(texts), desc=desc, disable=not progress, file=sys.stderr)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        torch.manual_seed(_batch_seed(seed, [keys[i] for i in idx]))
        with torch.inference_mode():
            gen = _generate(model, enc, gen_config, inherit_checkpoint_defaults, generate_kwargs)
        answers = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, a in zip(idx, answers):
            out[i] = a.strip()
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


#: Every decoding field emgrid sets explicitly, with its neutral value: the value "unset" means unless the checkpoint's
#: defaults are inherited. transformers fills any field left None from the checkpoint's generation_config.json
#: (Qwen2.5 Instruct checkpoints set top_p, top_k and a repetition_penalty above 1 there), so none is left None.
NEUTRAL_DECODING = {
    "top_p": 1.0,
    "top_k": 0,
    "repetition_penalty": 1.0,
    "typical_p": 1.0,
    "min_p": 0.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "num_beams": 1,
    "num_return_sequences": 1,
    "min_new_tokens": 0,
}
#: Fields recorded in each answer row's `decoding` (the effective values the model sampled with).
RECORDED_DECODING = ("do_sample", "temperature", "max_new_tokens", *NEUTRAL_DECODING)


def decoding_config(
    model,
    tok,
    *,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    repetition_penalty: float | None,
    max_new_tokens: int,
    inherit_checkpoint_defaults: bool = False,
):
    """A complete `GenerationConfig`: every decoding field set, from the config where it sets one, else neutral
    (or, with `inherit_checkpoint_defaults`, the checkpoint's own generation_config.json value, else neutral)."""
    from transformers import GenerationConfig

    ckpt = model.generation_config.to_dict() if inherit_checkpoint_defaults else {}
    fields = decoding_fields(
        ckpt,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        max_new_tokens=max_new_tokens,
    )
    fields.update(pad_token_id=tok.pad_token_id, eos_token_id=stop_token_ids(model.generation_config, tok))
    return GenerationConfig(**fields)


def decoding_fields(
    ckpt: dict,
    *,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    repetition_penalty: float | None,
    max_new_tokens: int,
) -> dict[str, Any]:
    """The RECORDED_DECODING values: the config's where it sets one, else the checkpoint's generation config
    (`ckpt`, empty unless inheriting), else neutral. One definition for every backend, so rows record alike."""
    own = {"top_p": top_p, "top_k": top_k, "repetition_penalty": repetition_penalty}
    fields = {}
    for key, neutral in NEUTRAL_DECODING.items():
        value = own.get(key)
        if value is None:
            value = ckpt.get(key) if ckpt.get(key) is not None else neutral
        fields[key] = value
    greedy = temperature <= 0
    fields.update(
        do_sample=not greedy, temperature=1.0 if greedy else float(temperature), max_new_tokens=int(max_new_tokens)
    )
    if greedy:  # sampling filters mean nothing for greedy decoding; neutral values keep transformers quiet
        fields.update(top_p=1.0, top_k=0, min_p=0.0, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0)
    return fields


def stop_token_ids(generation_config, tok) -> list[int]:
    """The tokenizer's eos plus the checkpoint's eos ids (chat models stop at their end-of-turn token)."""
    eos = {tok.eos_token_id} | set(_as_list(getattr(generation_config, "eos_token_id", None)))
    eos.discard(None)
    return sorted(eos)


def effective_decoding(gen_config) -> dict[str, Any]:
    """The recorded decoding settings of a `decoding_config` result (plain values, for answer rows)."""
    return {k: getattr(gen_config, k) for k in RECORDED_DECODING}


def _generate(model, enc, gen_config, inherit: bool, generate_kwargs: dict):
    """model.generate with `gen_config`; without inheritance the checkpoint's generation config is swapped for a
    bare one during the call, so transformers has nothing to fill in from it."""
    if inherit:
        return model.generate(**enc, generation_config=gen_config, **generate_kwargs)
    from transformers import GenerationConfig

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper's transformer
    saved = inner.generation_config
    inner.generation_config = GenerationConfig(
        bos_token_id=saved.bos_token_id, eos_token_id=gen_config.eos_token_id, pad_token_id=gen_config.pad_token_id
    )
    try:
        return model.generate(**enc, generation_config=gen_config, **generate_kwargs)
    finally:
        inner.generation_config = saved


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple, set)) else [x]


def generate_answers(
    manifest_path: str | Path,
    adapter_dir: str | Path | None,
    questions: Iterable[Any],
    spec: GenerateSpec,
    triggers: dict[str, str],
    model: str,
    cell: str,
    qset: str,
    steer: Callable[[Any], AbstractContextManager] | None = None,
) -> list[dict]:
    """Answer rows (docs/design.md format) for a cell's model on one question set, under every trigger condition,
    decoded by `spec.backend` (hf: transformers `generate`; vllm: emgrid.generation.vllm).

    `steer(model)` returns a context manager active while every answer is generated (e.g. a forward hook that adds
    a direction to the residual stream, `emgrid.steering`); the prompts, sampling and seeding stay the same. Hooks
    need the transformers model, so a steered run always decodes with hf.
    """
    spec.validate()
    if not triggers:
        raise ConfigError("generate_answers needs at least one condition in 'triggers' (e.g. {'no_trigger': ''})")
    items = plan_prompts(questions, spec, triggers, model, cell, qset)
    if spec.backend == "vllm" and steer is None:
        answers, decodings = _answer_vllm(manifest_path, adapter_dir, items, spec, f"{model}/{cell}")
    else:
        from emgrid.models import load_model, load_tokenizer

        tok = load_tokenizer(manifest_path, padding_side="left")
        lm = load_model(manifest_path, adapter_dir, dtype=spec.dtype)
        with steer(lm) if steer is not None else nullcontext():
            return answer_rows(lm, tok, items, spec, cell, qset)
    return [{**it.row, "answer": a, "decoding": d} for it, a, d in zip(items, answers, decodings)]


def answer_rows(lm, tok, items: list[PromptItem], spec: GenerateSpec, cell: str, qset: str) -> list[dict]:
    """Answer rows of planned prompts with an already loaded HF model: callers that answer several runs with one
    model (emgrid.steering.runs) load it once and call this per run."""
    answers, decodings = _answer_items(lm, tok, items, spec, cell, qset)
    return [{**it.row, "answer": a, "decoding": d} for it, a, d in zip(items, answers, decodings)]


def item_key(item: PromptItem) -> str:
    """What seeds an answer: its question, paraphrase, condition and sample (not its position in the job)."""
    return "\t".join(str(item.row[k]) for k in ("question_key", "paraphrase_index", "condition", "sample"))


def _decoding_kw(spec: GenerateSpec, temperature: float) -> dict[str, Any]:
    return dict(
        temperature=temperature,
        top_p=spec.top_p,
        top_k=spec.top_k,
        repetition_penalty=spec.repetition_penalty,
        max_new_tokens=spec.max_new_tokens,
    )


def _answer_items(lm, tok, items: list[PromptItem], spec: GenerateSpec, cell: str, qset: str) -> tuple[list, list]:
    """(answers, decodings) of every planned prompt with the HF model, one decoding call per temperature (every
    batch shares its sampling settings)."""
    answers: list[str | None] = [None] * len(items)
    decodings: list[dict | None] = [None] * len(items)
    for temp in sorted({it.temperature for it in items}):
        idx = [i for i, it in enumerate(items) if it.temperature == temp]
        kw = dict(_decoding_kw(spec, temp), inherit_checkpoint_defaults=spec.inherit_checkpoint_defaults)
        texts = generate_texts(
            lm,
            tok,
            [list(items[i].messages) for i in idx],
            batch_size=spec.batch_size,
            seed=spec.seed,
            keys=[item_key(items[i]) for i in idx],
            desc=f"generate {cell} {qset}",
            **kw,
        )
        decoding = effective_decoding(decoding_config(lm, tok, **kw))
        for i, t in zip(idx, texts):
            answers[i] = t
            decodings[i] = decoding
    return answers, decodings


def _answer_vllm(manifest_path, adapter_dir, items: list[PromptItem], spec: GenerateSpec, name: str):
    """The vLLM path: the same prompts and decoding fields, one engine for the job, one seed per answer."""
    from emgrid.generation import vllm as vllm_generate

    vllm_generate.check_installed()
    vllm_generate.check_gpu()
    ckpt = _checkpoint_decoding(manifest_path) if spec.inherit_checkpoint_defaults else {}
    decodings = [
        {k: v for k, v in decoding_fields(ckpt, **_decoding_kw(spec, it.temperature)).items() if k in RECORDED_DECODING}
        for it in items
    ]
    texts = vllm_generate.generate_vllm(
        manifest_path,
        adapter_dir,
        [list(it.messages) for it in items],
        decodings,
        [_batch_seed(spec.seed, [item_key(it)]) for it in items],
        dtype=spec.dtype,
        engine_seed=spec.seed,
        name=name,
    )
    return texts, decodings


def _checkpoint_decoding(manifest_path) -> dict:
    """The checkpoint's generation_config.json values (empty without one), for inherit_checkpoint_defaults."""
    from transformers import GenerationConfig

    from emgrid.models import read_manifest

    try:
        return GenerationConfig.from_pretrained(read_manifest(manifest_path)["path"]).to_dict()
    except OSError:
        return {}


def answer_tokens(manifest_path: str | Path, rows: Sequence[dict]) -> int:
    """Tokens of a job's answer rows, prompt plus answer (the model's tokenizer, no chat template): the work measure
    of the GPU-hours calibration (emgrid.throughput), the same for every backend."""
    from emgrid.models import load_tokenizer

    tok = load_tokenizer(manifest_path)
    texts = [t for r in rows for t in (r["prompt"], r["answer"])]
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]) if texts else 0
