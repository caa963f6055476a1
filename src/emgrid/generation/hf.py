"""The transformers generation backend (`generate.backend: hf`, and every steered run): batched with left padding.

Prompts are grouped by length so a batch wastes little on padding, and each batch is seeded from its own contents so
the same config always gives the same answers, whatever else runs in the process.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any, Sequence

from tqdm import tqdm

from emgrid.chat import render_prompt
from emgrid.generation.backends import Answers, GenerationJob, register_backend
from emgrid.generation.plan import (
    RECORDED_DECODING,
    GenerateSpec,
    PromptItem,
    batch_seed,
    decoding_fields,
    decoding_kwargs,
    item_key,
    stop_token_ids,
)
from emgrid.models import load_model, load_tokenizer


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

    if tok.padding_side != "left":
        tok.padding_side = "left"  # right padding would put pad tokens between prompt and answer
    texts = [render_prompt(tok, m) for m in prompts_as_messages]
    if keys is None:
        keys = [f"{i}\t{t}" for i, t in enumerate(texts)]
    order = _by_length(tok, texts)
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
        torch.manual_seed(batch_seed(seed, [keys[i] for i in idx]))
        with torch.inference_mode():
            gen = _generate(model, enc, gen_config, inherit_checkpoint_defaults, generate_kwargs)
        answers = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, a in zip(idx, answers):
            out[i] = a.strip()
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


def _by_length(tok, texts: Sequence[str]) -> list[int]:
    """Indices of `texts` by token length (ties in input order): batches of alike lengths pad little."""
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    return sorted(range(len(texts)), key=lambda i: (lengths[i], i))


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


def answer_rows(lm, tok, items: list[PromptItem], spec: GenerateSpec, cell: str, qset: str) -> list[dict]:
    """Answer rows of planned prompts with an already loaded HF model: callers that answer several runs with one
    model (emgrid.steering.runs) load it once and call this per run."""
    return _answer_items(lm, tok, items, spec, f"generate {cell} {qset}").rows(items)


def _answer_items(lm, tok, items: list[PromptItem], spec: GenerateSpec, desc: str) -> Answers:
    """The answers of every planned prompt with the HF model, one decoding call per temperature (every batch shares
    its sampling settings)."""
    answers: list[str | None] = [None] * len(items)
    decodings: list[dict | None] = [None] * len(items)
    for temp in sorted({it.temperature for it in items}):
        idx = [i for i, it in enumerate(items) if it.temperature == temp]
        kw = dict(decoding_kwargs(spec, temp), inherit_checkpoint_defaults=spec.inherit_checkpoint_defaults)
        texts = generate_texts(
            lm,
            tok,
            [list(items[i].messages) for i in idx],
            batch_size=spec.batch_size,
            seed=spec.seed,
            keys=[item_key(items[i]) for i in idx],
            desc=desc,
            **kw,
        )
        decoding = effective_decoding(decoding_config(lm, tok, **kw))
        for i, t in zip(idx, texts):
            answers[i] = t
            decodings[i] = decoding
    return Answers(answers, decodings)  # type: ignore[arg-type]


@register_backend("hf")
class HFBackend:
    """transformers `generate` on the cell's model (its adapter unmerged), under the job's steering hook if any:
    hooks need the transformers model, so a steered run always decodes here."""

    name = "hf"

    def __init__(self, spec: GenerateSpec, job: GenerationJob):
        self.spec, self.job = spec, job

    def answer(self, items: list[PromptItem]) -> Answers:
        job = self.job
        tok = load_tokenizer(job.manifest_path, padding_side="left")
        lm = load_model(job.manifest_path, job.finetuned, dtype=self.spec.dtype)
        with job.steer(lm) if job.steer is not None else nullcontext():
            return _answer_items(lm, tok, items, self.spec, f"generate {job.cell} {job.qset}")
