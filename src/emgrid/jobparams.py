"""The plain, cell-scoped values each job gets as params, and what a job reads of the config besides them.

Snakemake reruns a job when the repr of its params changes. So every function here returns only values that belong
to one cell (never the whole config), with dict keys sorted so that reordering the config file changes nothing.
emgrid.gridspec.Grid hands them to the rules; the analyses', efficacy and steering grids build on them.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from emgrid.data import recipe_needs_llm
from emgrid.errors import ConfigError
from emgrid.grid import (
    CONDITIONS,
    Cell,
    all_model_specs,
    backdoor_settings,
    deep_merge,
    question_set,
    sorted_plain,
    trigger_for,
)
from emgrid.io import canonical_json, sha256_text
from emgrid.models import API_SOURCES
from emgrid.prices import training_price
from emgrid.questions import load_questions


def dataset_params(config: dict, domain: str, variant: str, seed: int) -> dict:
    """Everything the dataset of one (domain, variant, seed) depends on, and nothing else."""

    dom = config["domains"][domain]
    params = {"domain": domain, "variant": variant, "seed": int(seed), "recipe": dom["recipe"]}
    backdoor = backdoor_settings(config, domain)
    # The plain variant needs the trigger too (examples that already contain it are filtered out of both
    # variants, so both sample the same rows), but not the mixing settings.
    params["backdoor"] = backdoor if variant == "backdoor" else {"trigger": backdoor["trigger"]}
    if recipe_needs_llm(dom["recipe"]):
        llm = config.get("llm") or {}
        params["llm"] = {k: v for k, v in llm.items() if k not in LLM_TRANSPORT_KEYS}
    return sorted_plain(params)


#: `llm` keys (emgrid.llm.ClientSpec) that change how dataset requests are sent, not the replies (none is part of a
#: cached reply's key): not in build_dataset's params, where a change would rebuild the data and retrain every cell
#: on it; the job reads them with `llm_transport`.
LLM_TRANSPORT_KEYS = ("api_key_env", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s")


def llm_transport(config: dict) -> dict:
    """The configured LLM_TRANSPORT_KEYS of the `llm` block (ClientSpec fills the unset ones)."""
    return {k: v for k, v in (config.get("llm") or {}).items() if k in LLM_TRANSPORT_KEYS}


def model_spec(config: dict, model: str) -> dict:
    overrides = ("finetune", "openai_finetune", "generate", "resources")
    spec = {k: v for k, v in all_model_specs(config)[model].items() if k not in overrides}
    return sorted_plain(spec)


def api_models(config: dict) -> list[str]:
    """Grid models finetuned and queried through an API (source openai): they get the API rules, not the GPU ones."""

    return [m for m, spec in config["models"].items() if spec.get("source") in API_SOURCES]


def api_finetune_params(config: dict, cell: Cell) -> dict:
    """The API job's settings (global < model < domain) with the cell's seed added, plus the training price."""

    model = config["models"][cell.model]
    spec = deep_merge(config["openai_finetune"], model.get("openai_finetune"))
    spec = deep_merge(spec, config["domains"][cell.domain].get("openai_finetune"))
    spec["seed"] = int(spec["seed"]) + int(cell.seed)  # the schema's default fills `seed`
    price = training_price(model.get("id") or "", config["judge"].get("prices"))
    return sorted_plain({"spec": spec, "training_price": price})


# finetune keys that change how a job runs (checkpoints, batching, hence speed and memory), not what it produces
# (the same examples per optimizer step, the same loss up to rounding; tests/test_finetune.py): kept out of the job's
# params, so changing them reruns nothing.
FINETUNE_BATCHING_KEYS = ("padding_free", "micro_batch_size")  # the run keys that are FinetuneSpec fields
FINETUNE_RUN_KEYS = ("checkpoint_every", *FINETUNE_BATCHING_KEYS)


def _merged_finetune(config: dict, cell: Cell) -> dict:
    """Global finetune settings, overridden by the model's, then by the domain's (most specific wins)."""
    spec = deep_merge(config["finetune"], config["models"][cell.model].get("finetune"))
    return deep_merge(spec, config["domains"][cell.domain].get("finetune"))


def finetune_params(config: dict, cell: Cell) -> dict:
    """The cell's finetune settings that determine its adapter (FINETUNE_RUN_KEYS left out); the seed is per cell."""
    spec = {k: v for k, v in _merged_finetune(config, cell).items() if k not in FINETUNE_RUN_KEYS}
    spec["seed"] = int(spec["seed"]) + int(cell.seed)  # the schema's default fills `seed`
    return sorted_plain(spec)


def finetune_batching(config: dict, cell: Cell) -> dict:
    """The cell's batching settings (FINETUNE_BATCHING_KEYS that are set): the job reads them from the config, not
    from its params, so changing them reruns nothing."""
    merged = _merged_finetune(config, cell)
    return {k: merged[k] for k in FINETUNE_BATCHING_KEYS if k in merged}


def finetune_spec(config: dict, cell: Cell) -> dict:
    """The whole FinetuneSpec mapping a cell trains with: its params plus its batching settings."""
    return {**finetune_params(config, cell), **finetune_batching(config, cell)}


def finetune_checkpoint_every(config: dict, cell: Cell) -> int:
    """Optimizer steps between resumable checkpoints of the cell's finetune (0 = none)."""
    value = _merged_finetune(config, cell).get("checkpoint_every", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(
            f"config key 'finetune.checkpoint_every' must be a non-negative integer, got {value!r} "
            f"(cell {cell.model}/{cell.id})"
        )
    return value


def without_default_backend(config: dict, cell: Cell, spec: dict) -> dict:
    """Generate settings as a param: the decoding engine (`backend`) only where it changes answers. Never for API
    models, and not "hf", what every answer before the key existed was made with, so those results stay complete;
    likewise `question_system_prompts` only when it is off (the study's reading)."""
    drop = set()
    if cell.model in api_models(config) or spec.get("backend") == "hf":
        drop.add("backend")
    if spec.get("question_system_prompts", True) is True:
        drop.add("question_system_prompts")
    return {k: v for k, v in spec.items() if k not in drop}


def generate_params(config: dict, cell: Cell, qset: str) -> dict:
    spec = deep_merge(config["generate"], config["models"][cell.model].get("generate"))
    spec = deep_merge(spec, question_set(config, qset).get("generate"))
    params = {
        "spec": without_default_backend(config, cell, spec),
        "triggers": {"no_trigger": "", "trigger": trigger_for(config, cell)},
    }
    return sorted_plain(params)


#: judge keys that change how requests are sent (parallelism, timeouts, retries, Batch API polling and chunking, the
#: hf judge's forward batching, which variable holds the key), not a score: none of them is part of a cached reply's
#: key (emgrid.llm.cache, emgrid.judge.hf_backend), so the same answers get the same judged rows whatever they are.
#: Kept out of the judge jobs' params (changing them reruns nothing); the jobs read them with `judge_transport`.
JUDGE_TRANSPORT_KEYS = (
    "api_key_env",
    "max_concurrency",
    "max_retries",
    "timeout_s",
    "backoff_base_s",
    "backoff_max_s",
    "batch_poll_s",
    "batch_poll_factor",
    "batch_poll_max_s",
    "batch_max_wait_s",
    "batch_completion_window",
    "batch_max_resubmits",
    "batch_max_requests",
    "batch_size",
)


def judge_params(config: dict) -> dict:
    """What a judged row depends on: model, prompts, mode, decoding, parsing and the judge model's price (its
    `cost_usd`). Not JUDGE_TRANSPORT_KEYS (a job param is a rerun trigger, and they change no score), nor the cache
    folder or other models' prices."""
    judge = config["judge"]
    spec = {k: v for k, v in judge.items() if k not in ("prices", "ledger_dir", *JUDGE_TRANSPORT_KEYS)}
    spec["prices"] = (
        {judge["model"]: judge["prices"][judge["model"]]} if judge["model"] in judge.get("prices", {}) else {}
    )
    return sorted_plain(spec)


def judge_transport(config: dict) -> dict:
    """The configured JUDGE_TRANSPORT_KEYS: a judge job adds them to its params (JudgeSpec fills the unset ones)."""
    return {k: config["judge"][k] for k in JUDGE_TRANSPORT_KEYS if k in config["judge"]}


def llm_cache_dir(config: dict) -> str:
    """The LLM response cache every judge and dataset request goes through: `judge.ledger_dir`, else
    `<cache_dir>/llm`. Read by the scripts from the config, never a param: moving the cache must rerun nothing."""
    return config["judge"].get("ledger_dir") or str(Path(config["cache_dir"]) / "llm")


def api_job_state_dir(config: dict) -> str:
    """Where API finetune jobs record their remote ids (`<cache_dir>/openai-finetune`): a paid job survives
    `rm -rf results`. Read from the config by the script, never a param."""
    return str(Path(config["cache_dir"]) / "openai-finetune")


def model_cache_dir(config: dict) -> str:
    """Where built or converted model weights live (`<cache_dir>/models`), outside results/ (not a param either)."""
    return str(Path(config["cache_dir"]) / "models")


#: Tags-mode parsing switches with the value every result before them was parsed with: in params only when changed.
PARSING_DEFAULTS = {"score_tag": "last", "bare_numbers": True}


def analysis_params(config: dict) -> dict:
    a = config["analysis"]
    return sorted_plain({k: v for k, v in a.items() if k not in PARSING_DEFAULTS or v != PARSING_DEFAULTS[k]})


def answers_plan(config: dict, cell: Cell, qset: str) -> dict:
    """What the judge job checks its answers file against: the answers generate was planned to write."""
    spec = generate_params(config, cell, qset)["spec"]
    return {"conditions": list(CONDITIONS), "samples_per_paraphrase": spec.get("samples_per_paraphrase")}


def report_params(config: dict) -> dict:
    return sorted_plain(
        {
            **config["report"],
            "judge_model": config["judge"]["model"],
            "judge_backend": config["judge"]["backend"],
            "drop_untaken_cells": config["analysis"]["drop_untaken_cells"],
            "interval_level": config["analysis"]["bootstrap"]["level"],
        }
    )


def report_domains(config: dict) -> dict:
    """Each domain's plot label and the study's grouping (Critical / Non-Critical / Ambiguous): the only domain keys
    the report's figures and tables read, so editing a recipe never redraws them by itself."""
    return sorted_plain(
        {d: {k: dom[k] for k in ("label", "category") if dom.get(k)} for d, dom in config["domains"].items()}
    )


def recipe_files(recipe: Any) -> list[str]:
    """Local files and folders a recipe reads (values of `path`-like keys that exist on this machine)."""
    out: list[str] = []
    if isinstance(recipe, dict):
        for k, v in recipe.items():
            if isinstance(v, str) and (k == "path" or k.endswith("_path")):
                # Hub ids share the `path` key with local files; only what exists here is a tracked input.
                if os.path.exists(v):
                    out.append(v)
            else:
                out.extend(recipe_files(v))
    elif isinstance(recipe, list):
        for v in recipe:
            out.extend(recipe_files(v))
    return out


@lru_cache(maxsize=None)
def _questions(path: str, options_key: str):

    return tuple(load_questions(path, **json.loads(options_key)))


def question_options(config: dict, qset: str) -> dict:
    """How a question set's judge prompts are resolved (keyword arguments of emgrid.questions.load_questions)."""
    qs = question_set(config, qset)
    return {
        "fallback_judge_prompts": qs.get("fallback_judge_prompts"),
        "item_level_judge_prompts": bool(qs.get("item_level_judge_prompts", False)),
    }


def questions_for(config: dict, qset: str):
    return _questions(question_set(config, qset)["path"], json.dumps(question_options(config, qset), sort_keys=True))


def question_file_missing(config: dict, qset: str) -> bool:
    """A question file not downloaded yet: a warning before the run (the planner counts it as empty), an error in
    the generate and judge jobs that need it."""
    return not Path(question_set(config, qset)["path"]).exists()


def present_questions(config: dict, qset: str) -> list:
    return [] if question_file_missing(config, qset) else list(questions_for(config, qset))


# What of a question file each stage reads. Comments, key order, YAML anchors and the file's mtime are not content.
GENERATION_FIELDS = ("key", "id", "index", "paraphrases", "samples_per_paraphrase", "system", "temperature")


def question_content(config: dict, qset: str, stage: str) -> str:
    """A digest of what `stage` ("generate" or "judge") reads from a question set, as a job param.

    The question file is an `ancient` input of both rules (its mtime triggers nothing); this param is what reruns
    them: generation on ids, paraphrases, system prompts, samples and temperatures, judging on the judge prompts
    (what it reads of the rest arrives in the answers file). So a judge-prompt edit never regenerates answers,
    and a comment changes nothing.
    """

    if question_file_missing(config, qset):
        return "missing"  # preflight warned; the job names the path
    if stage == "generate":
        path = question_set(config, qset)["path"]
        questions = _questions(path, json.dumps({"require_judge_prompts": False}))
        content = [{f: getattr(q, f) for f in GENERATION_FIELDS} for q in questions]
    elif stage == "judge":
        content = [{"key": q.key, "judge_prompts": q.judge_prompts} for q in questions_for(config, qset)]
    else:
        raise ValueError(f"question_content: unknown stage {stage!r}")
    return "sha256:" + sha256_text(canonical_json(content))


def probe_qsets(config: dict) -> list[str]:
    """Question sets whose questions carry a probe `domain` (they get a transfer matrix); missing files count as
    none until they exist."""
    return [q for q in config["question_sets"] if any(x.domain for x in present_questions(config, q))]


def count_answers(
    config: dict, cell: Cell, qset: str, gen_spec: dict | None = None, conditions: int = len(CONDITIONS)
) -> int:
    """Answers one generate job writes: paraphrases x samples x conditions, summed over questions (0 while the
    question file is missing); `gen_spec`: other generate settings than the cell's (steered runs). For `emgrid plan`
    only."""
    spec = gen_spec or generate_params(config, cell, qset)["spec"]
    total = 0
    for q in present_questions(config, qset):
        samples = spec.get("samples_per_paraphrase") or q.samples_per_paraphrase or 1
        total += len(q.paraphrases) * samples
    return total * conditions
