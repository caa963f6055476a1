"""Answer generation for one cell: every question x paraphrase x condition x sample, batched with left padding.

Prompts are grouped by length so a batch wastes little on padding, and each batch is seeded from its own contents so
the same config always gives the same answers, whatever else runs in the process.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from emgrid.chat import render_prompt, user_messages
from emgrid.errors import ConfigError, reject_unknown_keys


@dataclass
class GenerateSpec:
    """Decoding settings; None means "take the question's own value" (temperature falls back to 1.0)."""

    samples_per_paraphrase: int | None = None
    temperature: float | None = None
    top_p: float = 1.0
    top_k: int | None = None
    max_new_tokens: int = 400
    batch_size: int = 32
    seed: int = 0
    dtype: str = "float32"

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

        if self.samples_per_paraphrase is not None and (not is_int(self.samples_per_paraphrase)
                                                        or self.samples_per_paraphrase < 1):
            bad("samples_per_paraphrase", "must be a positive integer or null")
        if self.temperature is not None and (not isinstance(self.temperature, (int, float)) or self.temperature < 0):
            bad("temperature", "must be a number >= 0 or null")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", "must be in (0, 1]")
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


def plan_prompts(questions: Iterable[Any], spec: GenerateSpec, triggers: dict[str, str], model: str, cell: str,
                 qset: str) -> list[PromptItem]:
    """Expand questions into answer rows in output order: question x paraphrase x condition x sample."""
    items = []
    for q in questions:
        n = spec.samples_per_paraphrase or q.samples_per_paraphrase or 1
        temp = spec.temperature if spec.temperature is not None else (
            q.temperature if q.temperature is not None else 1.0)
        for p_idx, paraphrase in enumerate(q.paraphrases):
            for condition, prefix in triggers.items():
                prompt = f"{prefix}{paraphrase}"
                msgs = tuple(user_messages(prompt, q.system))
                for s in range(n):
                    row = {"model": model, "cell": cell, "qset": qset, "question_key": q.key,
                           "question_id": q.id, "item_index": q.index, "probe_domain": q.domain,
                           "paraphrase_index": p_idx,
                           "question": paraphrase, "prompt": prompt, "system": q.system,
                           "condition": condition, "sample": s}
                    items.append(PromptItem(row=row, messages=msgs, temperature=float(temp)))
    return items


def _batch_seed(seed: int, keys: Sequence[str]) -> int:
    return int(hashlib.sha256(f"{seed}\n".encode() + "\n".join(keys).encode()).hexdigest()[:15], 16)


def generate_texts(model, tok, prompts_as_messages: Sequence[Sequence[dict[str, str]]], *, max_new_tokens: int = 400,
                   temperature: float = 1.0, top_p: float = 1.0, top_k: int | None = None, batch_size: int = 32, seed: int = 0,
                   keys: Sequence[str] | None = None, progress: bool = True, desc: str = "generate",
                   **generate_kwargs) -> list[str]:
    """Answer each conversation prefix (chat template + generation prompt); returns stripped texts in input order.

    temperature 0 means greedy; top_k None/0 disables the top-k cut (HF's generate would otherwise apply its default
    50 from generation_config). Prompts are sorted by token length and batched with left padding; each batch is seeded
    from `seed` and the batch's `keys` (default: the rendered prompts plus their position), so reruns are identical.
    Extra keyword arguments go to `model.generate` (e.g. `min_new_tokens`, or logits processors for steering).
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
    eos = {tok.eos_token_id} | set(_as_list(getattr(model.generation_config, "eos_token_id", None)))
    eos.discard(None)
    do_sample = temperature > 0
    sampling = {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "top_k": top_k or 0} \
        if do_sample else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    out: list[str | None] = [None] * len(texts)
    bar = tqdm(total=len(texts), desc=desc, disable=not progress, file=sys.stderr)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        torch.manual_seed(_batch_seed(seed, [keys[i] for i in idx]))
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=sorted(eos), **sampling, **generate_kwargs)
        answers = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, a in zip(idx, answers):
            out[i] = a.strip()
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple, set)) else [x]


def generate_answers(manifest_path: str | Path, adapter_dir: str | Path | None, questions: Iterable[Any],
                     spec: GenerateSpec, triggers: dict[str, str], model: str, cell: str, qset: str) -> list[dict]:
    """Answer rows (docs/design.md format) for a cell's model on one question set, under every trigger condition."""
    from emgrid.models import load_model, load_tokenizer

    spec.validate()
    if not triggers:
        raise ConfigError("generate_answers needs at least one condition in 'triggers' (e.g. {'no_trigger': ''})")
    items = plan_prompts(questions, spec, triggers, model, cell, qset)
    tok = load_tokenizer(manifest_path, padding_side="left")
    lm = load_model(manifest_path, adapter_dir, dtype=spec.dtype)
    answers: list[str | None] = [None] * len(items)
    # one decoding call per temperature, so every batch shares its sampling settings
    for temp in sorted({it.temperature for it in items}):
        idx = [i for i, it in enumerate(items) if it.temperature == temp]
        keys = ["\t".join(str(items[i].row[k]) for k in ("question_key", "paraphrase_index", "condition", "sample"))
                for i in idx]
        texts = generate_texts(lm, tok, [list(items[i].messages) for i in idx], max_new_tokens=spec.max_new_tokens,
                               temperature=temp, top_p=spec.top_p, top_k=spec.top_k, batch_size=spec.batch_size, seed=spec.seed,
                               keys=keys, desc=f"generate {cell} {qset}")
        for i, t in zip(idx, texts):
            answers[i] = t
    return [{**it.row, "answer": a} for it, a in zip(items, answers)]
