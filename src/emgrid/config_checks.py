"""Whole-config checks that no single spec object can make: score thresholds written on the wrong scale, settings
that contradict each other across sections, and names a model does not have. Each returns error messages naming
the key path; emgrid.preflight runs them before the first job (so `snakemake -n` and `emgrid plan` fail on them).
"""

from __future__ import annotations

from pathlib import Path, PurePath

from emgrid.analyses import grid as analyses_grid
from emgrid.efficacy import grid as efficacy_grid
from emgrid import jobparams
from emgrid.models import known_hf_config

#: Thresholds on the judge's 0-100 scores (the schema keeps them in 0..100; domains' efficacy thresholds too).
SCORE_THRESHOLDS = (
    "analysis.aligned_below",
    "analysis.coherent_above",
    "analysis.sensitivity_aligned_below",
    "analyses.steering.aligned_above",
    "analyses.steering.misaligned_below",
    "analyses.steering.coherent_above",
)


def _get(config: dict, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _fraction_problem(where: str, value) -> str | None:
    """A score threshold strictly between 0 and 1 is almost certainly a fraction meant for a 0-1 scale: on the
    judge's 0-100 scale it passes (almost) no answer or every answer, and the rates come out 0 or 100 % silently."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        return None
    effect = (
        "almost no answer scores below it, so every rate comes out 0"
        if where.endswith("_below")
        else "almost every answer scores above it, so the filter does nothing"
    )
    return (
        f"config key {where}: {value} looks like a 0-1 fraction, but judge scores are 0-100 (did you mean "
        f"{value * 100:g}?): {effect}"
    )


def score_scale_problems(config: dict) -> list[str]:
    """Every score threshold given as a 0-1 fraction (analysis, steering answer sets, efficacy thresholds)."""
    found = [(p, _get(config, p)) for p in SCORE_THRESHOLDS]
    for domain, dom in (config.get("domains") or {}).items():
        efficacy = dom.get("efficacy") if isinstance(dom, dict) else None
        if isinstance(efficacy, dict):
            found.append((f"domains.{domain}.efficacy.threshold", efficacy.get("threshold")))
    return [msg for where, value in found if (msg := _fraction_problem(where, value))]


def trigger_problems(config: dict) -> list[str]:
    """A trigger with a line break or another control character: the trigger is prepended to a chat turn and
    reported in logs, CSV tables and the report as one line of text, and a stray newline from a YAML block scalar
    (`trigger: |`) is the usual way one gets there."""
    places = [("backdoor.trigger", _get(config, "backdoor.trigger"))]
    for domain, dom in (config.get("domains") or {}).items():
        if isinstance(dom, dict) and isinstance(dom.get("backdoor"), dict):
            places.append((f"domains.{domain}.backdoor.trigger", dom["backdoor"].get("trigger")))
    return [
        f"config key {where}: {value!r} holds a line break or control character; a trigger is one line of text "
        "(a YAML `|` block adds a newline: use a quoted string)"
        for where, value in places
        # a whitespace-only trigger is emgrid.data.variants.resolve_backdoor's error already
        if isinstance(value, str) and value.strip() and any(ord(c) < 32 for c in value)
    ]


def cache_dir_problems(config: dict) -> list[str]:
    """The cache must live outside results/: `rm -rf results` is promised to be safe (no request paid twice)."""
    out = []
    for key, value in (("cache_dir", config.get("cache_dir")), ("judge.ledger_dir", _get(config, "judge.ledger_dir"))):
        if isinstance(value, str) and value:
            parts = PurePath(value).parts
            if parts and parts[0] == "results" or (Path(value).resolve().is_relative_to(Path("results").resolve())):
                out.append(
                    f"config key {key}: {value!r} is under results/; `rm -rf results` would delete the paid LLM "
                    "replies and built models it keeps (use a folder outside results/, e.g. resources)"
                )
    return out


def efficacy_prompt_problems(config: dict) -> list[str]:
    """`n_prompts` above the recipe's held-out rows would be cut silently to what exists."""
    if not (config.get("efficacy") or {}).get("enabled", True):
        return []
    out = []
    for domain in efficacy_grid.efficacy_domains(config):
        n = efficacy_grid.efficacy_spec(config, domain).n_prompts
        heldout = efficacy_grid.resolve_recipe_sample(config, domain).get("heldout")
        if n is not None and isinstance(heldout, int) and n > heldout:
            out.append(
                f"config key domains.{domain}.efficacy.n_prompts: {n} held-out prompts asked for, but the recipe "
                f"holds out {heldout} (domains.{domain}.recipe.sample.heldout); raise that or lower n_prompts"
            )
    return out


def mia_problems(config: dict) -> list[str]:
    """MIA needs token log-probabilities of arbitrary text: only local models give them."""
    if not analyses_grid.mia_spec(config).enabled or analyses_grid.mia_models(config) or not config.get("models"):
        return []
    api = ", ".join(jobparams.api_models(config))
    return [
        f"config key analyses.mia.enabled: every grid model ({api}) is an API model, which gives no token "
        "log-probabilities of given text; set analyses.mia.enabled: false"
    ]


#: The linear modules LoRA can target in the decoder architectures emgrid prepares or reads (by config.json
#: `model_type`): tiny is a Qwen2, smollm2 a Llama. PEFT matches each name against module-name suffixes, and a name
#: no module has fails only when the finetune job builds the adapter.
LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LINEAR_MODULES = {
    "llama": LLAMA_LINEAR,
    "qwen2": LLAMA_LINEAR,
    "qwen3": LLAMA_LINEAR,
    "mistral": LLAMA_LINEAR,
    "mixtral": ("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3", "gate"),
    "gemma": LLAMA_LINEAR,
    "gemma2": LLAMA_LINEAR,
    "olmo2": LLAMA_LINEAR,
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
}


def model_type(spec: dict) -> str | None:
    """A model's config.json `model_type` when this machine can tell without loading it (tiny, smollm2, a local
    folder or a hub model in the Hugging Face cache: like emgrid.models.known_layer_count); else None."""
    source = spec.get("source")
    if source in ("tiny", "smollm2"):
        return {"tiny": "qwen2", "smollm2": "llama"}[source]
    return known_hf_config(spec).get("model_type")


def target_module_problems(config: dict) -> list[str]:
    """LoRA target modules a local model does not have (`q_prj`), for models whose architecture is known here; each
    named at the key that sets it (`finetune`, `models.<m>.finetune` or `domains.<d>.finetune`)."""
    local = [m for m in config["models"] if m not in set(jobparams.api_models(config))]
    places = [("finetune", config.get("finetune"), local)]
    places += [(f"models.{m}.finetune", config["models"][m].get("finetune"), [m]) for m in local]
    places += [(f"domains.{d}.finetune", dom.get("finetune"), local) for d, dom in config["domains"].items()]
    out = []
    for where, block, models in places:
        names = block.get("target_modules") if isinstance(block, dict) else None
        for model in models if isinstance(names, list) else ():
            kind = model_type(config["models"][model])
            for name in names if kind in LINEAR_MODULES else ():
                if isinstance(name, str) and name not in LINEAR_MODULES[kind]:
                    out.append(
                        f"config key {where}.target_modules: {name!r} is not a linear module of model {model!r} "
                        f"({kind}: {', '.join(LINEAR_MODULES[kind])})"
                    )
    return out
