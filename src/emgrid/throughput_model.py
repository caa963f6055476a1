"""What a GPU job's wall time depends on: the terms of its seconds, each a feature the planner knows.

Why not one tokens/s per rule: a rule's jobs differ in what makes a token cost more. On the demo grid the domain with
its own finetune override trains LoRA on all seven projections, and one finetune rate fitted on the demo's own logs
estimated the finetunes 46 % short. So a job's seconds are modelled as a sum of non-negative terms, each a feature of the job
the planner knows before it runs (`TERMS`):

    seconds = c_job + c_tokens x tokens + (c_steps + c_lora_steps x LoRA units + c_hook x hooked) x steps
              + c_lora x tokens x LoRA units + c_attn x tokens x tokens per sequence

`c_job` is the per-job fixed cost (imports, model loading). `steps` are the job's batched passes: a finetune's
optimizer steps (their per-step overhead bound the 7B finetune on an H200, docs/gpu.md; part of it per LoRA module:
its kernels' launches and autograd nodes, on a small model what all-linear costs rather than its FLOPs), a generation
job's decode steps (batches x max_new_tokens: decoding a batch costs per step, nearly whatever its size), a scoring
job's batches; a steering hook runs once per layer call, so per step. LoRA units = target modules per layer x
rank / 16 (the study's q/v at r 8 = 1; `all-linear` counts the seven projections); tokens per sequence = an example's
(finetune) or an answer's (generation) mean length, for attention's cost per token growing with it. The dtype changes every coefficient, so runs are fitted
per (rule, device, dtype).

The coefficients are fitted from recorded runs by `emgrid.throughput_fit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from emgrid.api_finetune import estimate_tokens
from emgrid.generation.plan import GenerateSpec
from emgrid.io import read_jsonl

# Features a job records in its throughput line and the planner gives a planned job (emgrid.plan's estimate keys).
FEATURE_KEYS = ("dtype", "steps", "lora_units", "seq_len", "hooked")
# Fitted terms in the order they are tried: tokens first (the work itself), then the fixed cost, then the modifiers.
TERMS = ("tokens", "job", "steps", "lora_steps", "lora_tokens", "attn_tokens", "hook_steps")
# Module names `all-linear` stands for in the decoder layers emgrid trains (Qwen2/Llama: 4 attention + 3 MLP).
ALL_LINEAR_MODULES = 7


@dataclass(frozen=True)
class TermModel:
    """Fitted seconds per unit of each term (missing terms: not fitted, zero) of one (rule, device, dtype)."""

    coef: Mapping[str, float] = field(default_factory=dict)

    def seconds(self, tokens: float, features: Mapping) -> float:
        values = term_values(tokens, features)
        return sum(c * values[t] for t, c in self.coef.items())


def lora_units(target_modules, r: int) -> float:
    """Target modules per layer x rank / 16: the study's LoRA (q/v, r 8) is 1.0, all seven projections at r 8 is 3.5."""
    mods = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    n = ALL_LINEAR_MODULES if "all-linear" in mods else len(set(mods))
    return n * int(r) / 16


def finetune_plan(spec: Mapping, examples: int, tokens: int) -> dict:
    """Tokens and features of a finetune of `examples` rows holding `tokens` (the planner's measure: 4 characters per
    token), from its FinetuneSpec mapping: the planner's estimate of a job and the job's own record use this one
    function, so the fit and the estimate count alike."""
    seen = float(spec.get("epochs", 3)) * examples
    per_step = int(spec.get("batch_size", 4)) * int(spec.get("grad_accum", 4))
    steps = math.ceil(examples / per_step) * float(spec.get("epochs", 3))
    if spec.get("max_steps"):
        seen, steps = min(seen, spec["max_steps"] * per_step), min(steps, spec["max_steps"])
    return {
        "est_gpu_tokens": round(seen * tokens / examples),
        "dtype": str(spec.get("dtype", "float32")),
        "steps": round(steps),
        "lora_units": lora_units(spec.get("target_modules", ("q_proj", "v_proj")), spec.get("r", 8)),
        "seq_len": round(tokens / examples, 1),
    }


def forward_features(n_items: int, batch_size: int, new_tokens: int, dtype: str, hooked: bool = False) -> dict:
    """Features of a job that runs the model over `n_items` in batches (generation, a direction's replay, MIA
    scoring): `steps` = its batched forward passes, one per new token of each batch when it generates."""
    batches = math.ceil(n_items / max(int(batch_size), 1))
    return {"dtype": str(dtype), "hooked": bool(hooked), "steps": batches * max(int(new_tokens), 1)}


def generation_plan(n_answers: int, spec: Mapping, hooked: bool = False) -> dict:
    """Answers and features of a planned generation job from its generate settings (GenerateSpec's defaults for
    what they leave out); its tokens are the answers x the recorded tokens per answer."""
    s = GenerateSpec.from_dict(dict(spec))
    return {"n_answers": int(n_answers), **forward_features(n_answers, s.batch_size, s.max_new_tokens, s.dtype, hooked)}


def scoring_plan(n_items: int, batch_size: int, dtype: str) -> dict:
    """Items and features of a planned job that scores `n_items` without generating (steering_direction's judged
    answers, mia_features' examples); not `n_answers`, which the plan counts as answers written."""
    return {"n_items": int(n_items), **forward_features(n_items, batch_size, 0, dtype)}


def term_values(tokens: float, features: Mapping) -> dict[str, float]:
    """Each term's value for a job of `tokens` with `features` (a missing feature: that term is 0)."""
    f = features
    return {
        "tokens": tokens,
        "job": 1.0,
        "steps": float(f.get("steps") or 0),
        "lora_steps": float(f.get("steps") or 0) * float(f.get("lora_units") or 0),
        "lora_tokens": tokens * float(f.get("lora_units") or 0),
        "attn_tokens": tokens * float(f.get("seq_len") or 0) / 1000,
        "hook_steps": float(f.get("steps") or 0) * float(bool(f.get("hooked"))),
    }


def finetune_record(spec: Mapping, train_jsonl, metrics: Mapping) -> tuple[int, dict]:
    """(plan tokens, features) of a finished finetune for its throughput line: the tokens and features the planner
    gives this job (`finetune_plan` on its training file), the tokens scaled to this process's share when it
    resumed from a checkpoint, and the optimizer steps it ran itself."""
    rows = read_jsonl(train_jsonl)
    planned = finetune_plan(spec, len(rows), estimate_tokens(rows))
    share = metrics["tokens_seen_this_run"] / metrics["tokens_seen"] if metrics.get("tokens_seen") else 1.0
    steps = int(metrics["steps"]) - int(metrics.get("resumed_from_step") or 0)
    features = {k: planned[k] for k in FEATURE_KEYS if k in planned}
    return round(planned["est_gpu_tokens"] * share), {**features, "steps": steps}
