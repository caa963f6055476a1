"""The whole-config check run before the first job (by the Snakefile, so `snakemake -n` and `emgrid plan` alike).

It builds every spec object a job will build (model, backdoor, recipe, finetune, generate, judge, question sets,
analysis) for every cell of the grid, checks their combinations, and reports *all* problems at once, each naming
its key path, instead of stopping at the first or leaving it to a job hours into the run. Things that can still be
fixed before the jobs need them (a local source file not copied yet, an API key variable not exported, a dataset or
model that needs the network) are warnings: `emgrid plan` prints them under "before you run".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from emgrid import config_checks as cc
from emgrid import grid as cell_grid
from emgrid import jobparams
from emgrid.scores import analysis_specs
from emgrid.analyses import grid as analyses_grid
from emgrid.api_finetune import ApiFinetuneSpec
from emgrid.config import schema_problems
from emgrid.data import recipe_needs_llm, validate_recipe
from emgrid.data.recipe import recipe_notes
from emgrid.data.variants import resolve_backdoor
from emgrid.efficacy.spec import resolve_efficacy
from emgrid.errors import ConfigError, EmgridError
from emgrid.finetune import FinetuneSpec
from emgrid.generation.plan import GenerateSpec
from emgrid.judge import JudgeSpec
from emgrid.llm import split_llm_config
from emgrid.models import check_model_spec, model_spec_notes
from emgrid.steering import grid as steering_grid
from emgrid.generation.vllm import check_installed
from emgrid.yamlio import config_file_problems

API_BACKENDS = ("openai", "openai-batch")


@dataclass
class Findings:
    """Problems found in a config: `errors` fail the run before any job; `warnings` are listed under "before you run"."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, msg: str) -> None:
        if msg not in self.errors:  # one bad global setting must not be listed once per cell
            self.errors.append(msg)

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError(format_errors(self.errors))


def check(
    config: dict,
    *,
    resolve_path: Callable[[str], str] = str,
    environ: Mapping[str, str] | None = None,
    config_files: Iterable[str] = (),
) -> Findings:
    """Validate `config` in place (schema defaults filled, question-set paths resolved) and return what was found.

    `resolve_path` maps a configured question-set path to the file to read (the Snakefile falls back to the
    repository); `environ` is where API keys are looked up (default: os.environ); `config_files` are the files
    `config` was read from, re-read strictly (a repeated key, which the first reading resolved silently).
    """
    found = Findings()
    for msg in config_file_problems(config_files):
        found.error(msg)
    schema_errors = schema_problems(config)
    for _, msg in schema_errors:
        found.error(msg)
    environ = os.environ if environ is None else environ
    for step in (
        _question_paths(resolve_path),
        _names,
        _models,
        _backdoor,
        _recipes,
        _finetune,
        _generate,
        _judge,
        _question_sets,
        _efficacy,
        _analysis,
        _analyses,
        _steering,
        _cross_checks,
        _api_keys(environ),
    ):
        if any(_covers(pattern, where) for where, _ in schema_errors for pattern in _SECTIONS.get(step, ())):
            continue  # the schema error already names the key; building the spec would only repeat it
        try:
            step(config, found)
        except EmgridError as e:
            found.error(str(e))
        except (KeyError, TypeError, AttributeError, ValueError):
            # A section the schema already rejected cannot be built further; its schema error says why.
            if not schema_errors:
                raise
    return found


def _covers(pattern: str, where: str) -> bool:
    """Whether key path `where` lies in `pattern` ('*' matches one key: `domains.*.finetune`)."""
    parts, got = pattern.split("."), where.split(".")
    return len(got) >= len(parts) and all(p in ("*", g) for p, g in zip(parts, got))


def _guard(found: Findings, fn: Callable[[], object], context: str = "") -> None:
    """Run one spec construction; a problem is recorded (with `context`) and the check goes on with the next one."""
    try:
        fn()
    except EmgridError as e:
        found.error(f"{e}{context}")


def _merged(overrides: list[str]) -> str:
    return f" (after merging {', '.join(overrides)})" if overrides else ""


def _question_paths(resolve_path):
    def step(config: dict, found: Findings) -> None:
        for qs in config["question_sets"].values():
            if isinstance(qs, dict) and isinstance(qs.get("path"), str):
                qs["path"] = resolve_path(qs["path"])

    return step


def _names(config: dict, found: Findings) -> None:
    for msg in cell_grid.name_problems(config):
        found.error(msg)


def _models(config: dict, found: Findings) -> None:
    for owner in ("models", "judge_models"):
        for key, spec in (config.get(owner) or {}).items():
            where = f"{owner}.{key}"
            plain = {k: v for k, v in spec.items() if k not in ("finetune", "openai_finetune", "generate", "resources")}
            _guard(found, lambda: check_model_spec(plain, where))
            for note in model_spec_notes(plain, where):
                found.warn(note)


def _backdoor(config: dict, found: Findings) -> None:
    top: list[str] = []
    try:
        resolve_backdoor(config["backdoor"])
    except EmgridError as e:
        top.append(str(e))
        found.error(str(e))
    for domain, dom in config["domains"].items():
        if not dom.get("backdoor"):
            continue
        try:
            resolve_backdoor(cell_grid.backdoor_settings(config, domain))
        except EmgridError as e:
            if str(e) not in top:  # the domain's own block is at fault
                found.error(f"domains.{domain}.{e}")


def _recipes(config: dict, found: Findings) -> None:
    for domain, dom in config["domains"].items():
        try:
            validate_recipe(domain, dom["recipe"])
        except EmgridError as e:
            found.error(str(e))
            continue
        for note in recipe_notes(domain, dom["recipe"]):
            found.warn(note)
        if recipe_needs_llm(dom["recipe"]):
            _guard(found, lambda: split_llm_config(config.get("llm")))


def _finetune(config: dict, found: Findings) -> None:
    api = jobparams.api_models(config)
    for cell in cell_grid.cells(config):
        if cell.is_base:
            continue
        section = "openai_finetune" if cell.model in api else "finetune"
        overrides = [
            f"{o}.{k}.{section}"
            for o, k in (("models", cell.model), ("domains", cell.domain))
            if config[o][k].get(section)
        ]
        if cell.model in api:
            spec = jobparams.api_finetune_params(config, cell)["spec"]
            _guard(found, lambda: ApiFinetuneSpec.from_dict(spec), _merged(overrides))
        else:
            _guard(found, lambda: FinetuneSpec.from_dict(jobparams.finetune_spec(config, cell)), _merged(overrides))
            _guard(found, lambda: jobparams.finetune_checkpoint_every(config, cell), _merged(overrides))


def _generate(config: dict, found: Findings) -> None:
    for model in config["models"]:
        for qset in config["question_sets"]:
            overrides = [
                f"{o}.{k}.generate"
                for o, k in (("models", model), ("question_sets", qset))
                if config[o][k].get("generate")
            ]
            spec = jobparams.generate_params(config, cell_grid.Cell(model), qset)["spec"]
            _guard(found, lambda: GenerateSpec.from_dict(spec), _merged(overrides))
            if spec.get("backend") == "vllm":
                _guard(found, check_installed, _merged(overrides))
            unsupported = {
                "top_k": bool(spec.get("top_k")),
                "repetition_penalty": spec.get("repetition_penalty") not in (None, 1.0),
            }
            for key in [k for k, bad in unsupported.items() if bad] if model in jobparams.api_models(config) else []:
                found.error(
                    f"generate.{key}: {spec[key]} for models.{model} (source openai), question set "
                    f"{qset}; the OpenAI API has no such setting (set it to null){_merged(overrides)}"
                )


def _judge(config: dict, found: Findings) -> None:
    JudgeSpec.from_dict(config["judge"])
    j = config["judge"]
    if j["backend"] != "hf" and j["model"] in cell_grid.all_model_specs(config):
        found.warn(
            f"judge.model: {j['model']!r} is a key of models/judge_models, but backend {j['backend']!r} "
            "sends it to the API as a model name (use backend: hf to judge with that model)"
        )


def _question_sets(config: dict, found: Findings) -> None:
    metrics = config["judge"].get("metrics")
    for qset, qs in config["question_sets"].items():
        if not os.path.exists(qs["path"]):
            found.warn(
                f"question_sets.{qset}.path: question file {qs['path']} does not exist yet; put it there "
                "before the generate jobs run (the plan counts no answers or judge requests for it)"
            )
            continue
        try:
            questions = jobparams.questions_for(config, qset)
        except EmgridError as e:
            found.error(f"question_sets.{qset}: {e}")
            continue
        if metrics:
            have = {m for q in questions for m in q.judge_prompts}
            missing = sorted(set(metrics) - have)
            if missing:
                found.error(
                    f"judge.metrics: {missing} have no judge prompt in question set {qset!r} "
                    f"(its metrics: {sorted(have)})"
                )


def _efficacy(config: dict, found: Findings) -> None:
    """Each domain's efficacy scorer (a judge-scored domain needs a valid judge prompt) and the generate settings of
    the held-out answers (global <- model <- efficacy.generate)."""
    if not config["efficacy"]["enabled"]:
        return
    for domain, dom in config["domains"].items():
        _guard(found, lambda: resolve_efficacy(domain, dom))
    for model in config["models"]:
        overrides = [
            k
            for k, on in (
                (f"models.{model}.generate", config["models"][model].get("generate")),
                ("efficacy.generate", config["efficacy"].get("generate")),
            )
            if on
        ]
        spec = cell_grid.deep_merge(
            cell_grid.deep_merge(config["generate"], config["models"][model].get("generate")),
            config["efficacy"].get("generate"),
        )
        _guard(found, lambda: GenerateSpec.from_dict(spec), _merged(overrides))


def _analysis(config: dict, found: Findings) -> None:
    analysis_specs(config["analysis"])


def _analyses(config: dict, found: Findings) -> None:
    for msg in analyses_grid.check_analyses(config):
        found.warn(msg)


def _steering(config: dict, found: Findings) -> None:
    for msg in steering_grid.check(config):
        found.warn(msg)


def _cross_checks(config: dict, found: Findings) -> None:
    """What no single spec sees: score thresholds written as 0-1 fractions, triggers with line breaks, a cache under
    results/, more efficacy prompts than held-out rows, MIA without a local model, LoRA modules a model lacks."""
    for check in (
        cc.score_scale_problems,
        cc.trigger_problems,
        cc.cache_dir_problems,
        cc.efficacy_prompt_problems,
        cc.mia_problems,
        cc.target_module_problems,
    ):
        try:
            problems = check(config)
        except EmgridError:
            continue  # a setting the check reads is itself invalid: its own step has reported it
        for msg in problems:
            found.error(msg)


def _api_keys(environ: Mapping[str, str]):
    def step(config: dict, found: Findings) -> None:
        j = config["judge"]
        if j["backend"] in API_BACKENDS and j.get("api_key_env") and not environ.get(j["api_key_env"]):
            found.warn(
                f"judge.api_key_env: environment variable {j['api_key_env']} is not set; the judge jobs "
                "need it (export it where snakemake runs; SLURM jobs inherit it)"
            )
        for m in jobparams.api_models(config):
            env = config["models"][m].get("api_key_env", "OPENAI_API_KEY")
            if not environ.get(env):
                found.warn(
                    f"models.{m}.api_key_env: environment variable {env} is not set; the finetune_openai and "
                    "generate_openai jobs of this model need it"
                )
        if any(_needs_llm(dom) for dom in config["domains"].values()):
            env = (config.get("llm") or {}).get("api_key_env", "OPENAI_API_KEY")
            if env and not environ.get(env):
                found.warn(
                    f"llm.api_key_env: environment variable {env} is not set; build_dataset needs it for "
                    "recipes that call an LLM (unless every reply is already in the LLM response cache)"
                )

    return step


def _needs_llm(dom: dict) -> bool:
    return isinstance(dom.get("recipe"), dict) and recipe_needs_llm(dom["recipe"])


# Key paths each spec-building step reads: a schema error there means the step is skipped (see `check`).
_SECTIONS = {
    _models: ("models", "judge_models"),
    _backdoor: ("backdoor", "domains.*.backdoor"),
    _finetune: (
        "finetune",
        "models.*.finetune",
        "domains.*.finetune",
        "openai_finetune",
        "models.*.openai_finetune",
        "domains.*.openai_finetune",
    ),
    _generate: ("generate", "models.*.generate", "question_sets.*.generate"),
    _judge: ("judge",),
    _question_sets: ("question_sets", "judge"),
    _efficacy: ("efficacy", "domains.*.efficacy", "generate", "models.*.generate"),
    _analysis: ("analysis",),
    _analyses: ("analyses",),
    _steering: ("analyses", "question_sets"),
}


def format_errors(errors: Iterable[str]) -> str:
    errors = list(errors)
    return f"{len(errors)} problem(s), fix them all before the first job:\n" + "\n".join(f"  - {e}" for e in errors)


def format_warnings(warnings: Iterable[str]) -> str:
    """The "before you run" list, as `snakemake -n` and `emgrid plan` print it."""
    warnings = list(warnings)
    if not warnings:
        return ""
    return "before you run:\n" + "\n".join(f"  - {w}" for w in warnings)
