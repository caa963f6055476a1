"""What a generate job answers and how it samples, whatever the backend: the decoding settings (`GenerateSpec`), the
planned prompts in output order (`plan_prompts`), the key that seeds each answer, and the decoding fields every
backend records alike.

No torch here: the planner, the integrity checks and the throughput model import this module on machines (and in
processes) that never load a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from emgrid.chat import user_messages
from emgrid.errors import ConfigError, reject_unknown_keys
from emgrid.models import DTYPE_NAMES

#: The decoding engines `generate.backend` may name for local models (emgrid.generation.hf, emgrid.generation.vllm).
#: API models ignore the key: their source (openai) chooses their backend.
BACKENDS = ("hf", "vllm")


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


def item_key(item: PromptItem) -> str:
    """What seeds an answer: its question, paraphrase, condition and sample (not its position in the job)."""
    return "\t".join(str(item.row[k]) for k in ("question_key", "paraphrase_index", "condition", "sample"))


def batch_seed(seed: int, keys: Sequence[str]) -> int:
    """The seed of a batch of answers (hf) or of one answer (vllm): `generate.seed` and the answers' keys, so an
    answer does not depend on what else runs in the process."""
    return int(hashlib.sha256(f"{seed}\n".encode() + "\n".join(keys).encode()).hexdigest()[:15], 16)


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


def decoding_kwargs(spec: GenerateSpec, temperature: float) -> dict[str, Any]:
    """The config's decoding settings of answers sampled at `temperature` (`decoding_fields`' keyword arguments)."""
    return dict(
        temperature=temperature,
        top_p=spec.top_p,
        top_k=spec.top_k,
        repetition_penalty=spec.repetition_penalty,
        max_new_tokens=spec.max_new_tokens,
    )


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


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple, set)) else [x]
