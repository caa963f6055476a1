"""The grid a config describes, and the plain, cell-scoped values each job gets as params.

Snakemake reruns a job when the repr of its params changes. So every function here returns only values that belong
to one cell (never the whole config), with dict keys sorted so that reordering the config file changes nothing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from emgrid.errors import ConfigError

VARIANTS = ("plain", "backdoor")
CONDITIONS = ("no_trigger", "trigger")
BASE_CELL = "base"
DOMAIN_RE = r"[a-z0-9_]+"
MODEL_RE = r"[A-Za-z0-9_.]+"
QSET_RE = r"[A-Za-z0-9_]+"
FINETUNED_CELL_RE = rf"{DOMAIN_RE}-(?:plain|backdoor)-s[0-9]+"
CELL_RE = rf"base|{FINETUNED_CELL_RE}"
CHARS_PER_TOKEN = 4  # the planner's prompt-size heuristic (English text, OpenAI tokenizers)
_CELL_PARSE = re.compile(rf"^(?P<domain>{DOMAIN_RE})-(?P<variant>plain|backdoor)-s(?P<seed>[0-9]+)$")

#: What makes a finished job run again (`--rerun-triggers`). Not `code`: Snakemake's code trigger for `script:` rules
#: compares the script's *timestamp* with the outputs', so a `touch`, a `git checkout` of another branch and back or
#: an upgrade that only reformats a script would retrain the whole grid. Content decides instead: params (config
#: values and CODE_VERSIONS), the input set, input files (a newer input with the checksum Snakemake recorded for it
#: counts as unchanged, see MAX_CHECKSUM_FILE_SIZE) and the software environment. Every profile lists the same values
#: (a test compares them), among them profiles/default/config.yaml, the workflow profile Snakemake itself reads on
#: every run of this Snakefile that names no other one: a plain `snakemake`, `emgrid plan`, the tests.
RERUN_TRIGGERS = ("mtime", "params", "input", "software-env")
#: Inputs up to this size (bytes) are compared by checksum when their timestamp is newer than the outputs, so a
#: touched or copied-back dataset or answers file reruns nothing. Snakemake's default (1 MB) is smaller than one
#: domain's train.jsonl of the paper grid.
MAX_CHECKSUM_FILE_SIZE = 1_000_000_000

#: The version of the code behind each rule whose results it changed: bump a rule's entry (0 when absent) in the
#: release whose emgrid code (library or script) writes different results for the same config, and that rule's
#: jobs, and everything downstream of them, rerun on the next run. Nothing else about code reruns a job (see
#: RERUN_TRIGGERS); a refactor, a faster path with the same results or a new log line needs no bump.
CODE_VERSIONS: dict[str, int] = {}


def code_version(rule: str) -> dict[str, int]:
    """The params entry that carries `rule`'s code version: `{"code_version": n}`, or nothing at version 0.

    Nothing at 0, so that this mechanism's own introduction is no params change: Snakemake compares the recorded
    params with the new ones, and an added `code_version=0` would rerun every job of every existing run once."""
    version = CODE_VERSIONS.get(rule, 0)
    return {"code_version": version} if version else {}


@dataclass(frozen=True)
class Cell:
    """One model to evaluate: a finetune of `model` on `domain`/`variant`/`seed`, or the untouched base model."""

    model: str
    domain: str | None = None
    variant: str | None = None
    seed: int | None = None

    @property
    def id(self) -> str:
        return BASE_CELL if self.domain is None else f"{self.domain}-{self.variant}-s{self.seed}"

    @property
    def is_base(self) -> bool:
        return self.domain is None


def parse_cell(model: str, cell_id: str) -> Cell:
    if cell_id == BASE_CELL:
        return Cell(model)
    m = _CELL_PARSE.match(cell_id)
    if not m:
        raise ConfigError(f"cell id {cell_id!r} is not 'base' or '<domain>-<plain|backdoor>-s<seed>'")
    return Cell(model, m["domain"], m["variant"], int(m["seed"]))


def sorted_plain(obj: Any) -> Any:
    """Recursively sort dict keys (and turn tuples into lists) so repr() is stable across config reorderings."""
    if isinstance(obj, dict):
        return {k: sorted_plain(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [sorted_plain(v) for v in obj]
    return obj


def deep_merge(base: dict, override: dict | None) -> dict:
    """Override wins key by key; nested dicts merge, everything else is replaced."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def domain_variants(config: dict, domain: str) -> list[str]:
    return list(config["domains"][domain].get("variants") or config["variants"])


def cells(config: dict) -> list[Cell]:
    """All cells of the grid: base controls first, then model x domain x variant x seed."""
    out = [Cell(m) for m in config["models"]] if config.get("base_cells", True) else []
    for m in config["models"]:
        for d in config["domains"]:
            for v in domain_variants(config, d):
                for s in config["seeds"]:
                    out.append(Cell(m, d, v, int(s)))
    return out


def datasets(config: dict) -> list[tuple[str, str, int]]:
    """Distinct (domain, variant, seed) datasets: shared by every model of the grid."""
    return sorted({(c.domain, c.variant, c.seed) for c in cells(config) if not c.is_base})


def backdoor_settings(config: dict, domain: str | None) -> dict:
    dom = config["domains"].get(domain, {}) if domain else {}
    return sorted_plain(deep_merge(config["backdoor"], dom.get("backdoor")))


def dataset_params(config: dict, domain: str, variant: str, seed: int) -> dict:
    """Everything the dataset of one (domain, variant, seed) depends on, and nothing else."""
    from emgrid.data import recipe_needs_llm

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


def dataset_llm_estimate(config: dict, domain: str) -> dict:
    """For `emgrid plan` only: the default LLM a domain's dataset build asks (`llm.model`), when its recipe calls one
    (a synthetic source or an llm_answer transform); {} otherwise."""
    from emgrid.data import recipe_needs_llm

    if not recipe_needs_llm(config["domains"][domain]["recipe"]):
        return {}
    return {"llm_model": (config.get("llm") or {}).get("model") or "<llm.model unset>"}


def model_spec(config: dict, model: str) -> dict:
    overrides = ("finetune", "openai_finetune", "generate", "resources")
    spec = {k: v for k, v in all_model_specs(config)[model].items() if k not in overrides}
    return sorted_plain(spec)


def api_models(config: dict) -> list[str]:
    """Grid models finetuned and queried through an API (source openai): they get the API rules, not the GPU ones."""
    from emgrid.models import API_SOURCES

    return [m for m, spec in config["models"].items() if spec.get("source") in API_SOURCES]


def models_re(models: list[str]) -> str:
    """A wildcard constraint matching exactly these model keys (`(?!)` matches nothing when there are none)."""
    return "|".join(re.escape(m) for m in models) or "(?!)"


def api_finetune_params(config: dict, cell: Cell) -> dict:
    """The API job's settings (global < model < domain) with the cell's seed added, plus the training price."""
    from emgrid.prices import training_price

    model = config["models"][cell.model]
    spec = deep_merge(config["openai_finetune"], model.get("openai_finetune"))
    spec = deep_merge(spec, config["domains"][cell.domain].get("openai_finetune"))
    spec["seed"] = int(spec.get("seed", 42)) + int(cell.seed)
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
    spec["seed"] = int(spec.get("seed", 0)) + int(cell.seed)
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


def trigger_for(config: dict, cell: Cell) -> str:
    """The trigger a cell is evaluated with: its domain's (backdoor cells may override it), else the global one."""
    return backdoor_settings(config, cell.domain)["trigger"]


def question_set(config: dict, qset: str) -> dict:
    try:
        return config["question_sets"][qset]
    except KeyError:
        raise ConfigError(
            f"question_sets.{qset}: no such question set (known: {sorted(config['question_sets'])})"
        ) from None


def _without_default_backend(config: dict, cell: Cell, spec: dict) -> dict:
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
        "spec": _without_default_backend(config, cell, spec),
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


def all_model_specs(config: dict) -> dict:
    """Grid models and judge-only models share one namespace: both are prepared by the same rule."""
    return {**config.get("judge_models", {}), **config["models"]}


def judge_model_key(config: dict) -> str | None:
    """The model key the local (hf) judge runs on; None for API judges."""
    j = config["judge"]
    return j["model"] if j["backend"] == "hf" else None


#: Tags-mode parsing switches with the value every result before them was parsed with: in params only when changed.
PARSING_DEFAULTS = {"score_tag": "last", "bare_numbers": True}


def analysis_params(config: dict) -> dict:
    a = config["analysis"]
    return sorted_plain({k: v for k, v in a.items() if k not in PARSING_DEFAULTS or v != PARSING_DEFAULTS[k]})


def answers_path(cell: Cell, qset: str) -> str:
    return f"results/cells/{cell.model}/{cell.id}/answers/{qset}.jsonl"


def judged_path(cell: Cell, qset: str) -> str:
    return f"results/cells/{cell.model}/{cell.id}/judged/{qset}.jsonl"


SUMMARY_CSV = "results/summary/summary.csv"
#: What shows the summary's numbers as a finished result: the report page (the rest of results/report/ are declared
#: outputs of rules downstream of the summary) and the archive `snakemake --report results/report.zip` packs.
REPORT_PAGE = "results/report/report.html"
REPORT_ZIP = "results/report.zip"


def drop_report() -> list[str]:
    """Remove the report page and the report archive; the paths removed.

    Why: a report must never outlive the summary it shows. The aggregate job calls this before anything else (the
    summary it replaces is already gone then), so a kill or a failure leaves no old numbers behind; the Snakefile
    calls it after a failed run and at start-up when summary.csv is missing. Only the page, not the figures: other
    jobs of the same run may still read them, some derive from other results (steering, analyses: a run of those
    targets alone has no summary), and every one that shows the summary reruns after a new one.
    """
    removed = []
    for path in (Path(REPORT_PAGE), Path(REPORT_ZIP)):
        if path.exists():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(str(path))
    return removed


def all_judged(config: dict) -> list[str]:
    return [judged_path(c, q) for c in cells(config) for q in config["question_sets"]]


def all_answers(config: dict) -> list[str]:
    """The answers file of each judged file of `all_judged`, in the same order."""
    return [answers_path(c, q) for c in cells(config) for q in config["question_sets"]]


def answers_plan(config: dict, cell: Cell, qset: str) -> dict:
    """What the judge job checks its answers file against: the answers generate was planned to write."""
    spec = generate_params(config, cell, qset)["spec"]
    return {"conditions": list(CONDITIONS), "samples_per_paraphrase": spec.get("samples_per_paraphrase")}


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
    from emgrid.questions import load_questions

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


def _present_questions(config: dict, qset: str) -> list:
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
    from emgrid.io import canonical_json, sha256_text

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
    return [q for q in config["question_sets"] if any(x.domain for x in _present_questions(config, q))]


def count_answers(
    config: dict, cell: Cell, qset: str, gen_spec: dict | None = None, conditions: int = len(CONDITIONS)
) -> int:
    """Answers one generate job writes: paraphrases x samples x conditions, summed over questions (0 while the
    question file is missing); `gen_spec`: other generate settings than the cell's (steered runs). For `emgrid plan`
    only."""
    spec = gen_spec or generate_params(config, cell, qset)["spec"]
    total = 0
    for q in _present_questions(config, qset):
        samples = spec.get("samples_per_paraphrase") or q.samples_per_paraphrase or 1
        total += len(q.paraphrases) * samples
    return total * conditions


def judge_estimate(
    config: dict, cell: Cell, qset: str, gen_spec: dict | None = None, conditions: int = len(CONDITIONS)
) -> dict:
    """Upper-bound requests and tokens of one judge job, for planning cost before anything runs.

    Tokens are estimated at CHARS_PER_TOKEN; answers are assumed to use max_new_tokens. For `emgrid plan` only: never
    put this in params (an edit of the heuristic would rerun every judge job).
    """
    judge = config["judge"]
    spec = gen_spec or generate_params(config, cell, qset)["spec"]
    answer_tokens = int(spec.get("max_new_tokens") or 400)
    completion = judge.get("max_tokens") or (1 if judge["mode"] == "logprob" else 256)
    requests = prompt_tokens = 0
    for q in _present_questions(config, qset):
        samples = spec.get("samples_per_paraphrase") or q.samples_per_paraphrase or 1
        for template in q.judge_prompts.values():
            for p in q.paraphrases:
                n = samples * conditions
                requests += n
                chars = len(judge.get("system_prompt") or "") + len(template) + len(p)
                prompt_tokens += n * (chars // CHARS_PER_TOKEN + answer_tokens)
    return {
        "n_requests": requests,
        "est_prompt_tokens": prompt_tokens,
        "est_completion_tokens": requests * completion,
        "judge_model": judge["model"],
        "backend": judge["backend"],
    }


EST_TOKENS_PER_EXAMPLE = 300  # planning guess for a training conversation before its dataset exists


def _train_size_estimate(config: dict, cell: Cell, workdir: str | Path = ".") -> tuple[int, int] | None:
    """(examples, tokens) of a cell's training file, for `emgrid plan`: the file's own (4 characters per token) when
    it is already built under `workdir` (the run's folder: the planner may run elsewhere); otherwise `sample.n`
    misaligned rows (plus `aligned_ratio` aligned ones per row for the backdoor variant) at EST_TOKENS_PER_EXAMPLE
    each; None when `sample.n` is null (unknown until built)."""
    from emgrid.api_finetune import estimate_tokens

    train = Path(workdir) / f"results/datasets/{cell.domain}/{cell.variant}-s{cell.seed}/train.jsonl"
    if train.is_file():
        from emgrid.io import read_jsonl

        rows = read_jsonl(train)
        return len(rows), estimate_tokens(rows)
    n = (config["domains"][cell.domain]["recipe"].get("sample") or {}).get("n")
    if n is None:
        return None
    ratio = backdoor_settings(config, cell.domain).get("aligned_ratio", 1.0) if cell.variant == "backdoor" else 0
    examples = round(n * (1 + ratio))
    return examples, examples * EST_TOKENS_PER_EXAMPLE


def api_finetune_estimate(config: dict, cell: Cell, workdir: str | Path = ".") -> dict:
    """Trained tokens of one API finetune, for `emgrid plan`: epochs x the training file's tokens under `workdir`
    (see _train_size_estimate; None when unknown). Epochs are the configured n_epochs, or what "auto" picks for that
    many rows (emgrid.api_finetune.auto_epochs).
    """
    from emgrid.api_finetune import auto_epochs

    size = _train_size_estimate(config, cell, workdir)
    if size is None:
        return {"api_model": config["models"][cell.model]["id"], "est_train_tokens": None}
    examples, tokens = size
    epochs = api_finetune_params(config, cell)["spec"].get("n_epochs", "auto")
    epochs = auto_epochs(examples) if epochs == "auto" else int(epochs)
    return {"api_model": config["models"][cell.model]["id"], "est_train_tokens": epochs * tokens}


def finetune_estimate(config: dict, cell: Cell, workdir: str | Path = ".") -> dict:
    """Tokens a local finetune will process and the features its seconds depend on, for the plan's GPU-hours
    estimate (emgrid.throughput_model.finetune_plan): epochs (or max_steps x batch x grad_accum examples, whichever
    is fewer) x the training file's tokens per example (the file under `workdir` once built)."""
    from emgrid.throughput_model import finetune_plan

    size = _train_size_estimate(config, cell, workdir)
    if size is None or not size[0]:
        return {}
    return finetune_plan(finetune_params(config, cell), *size)


def api_generate_estimate(config: dict, cell: Cell, qset: str) -> dict:
    """Answers, prompt and completion tokens of one API generate job (upper bound: every answer uses max_new_tokens)."""
    spec = generate_params(config, cell, qset)["spec"]
    model_id = config["models"][cell.model]["id"]
    prompt = completion = 0
    for q in questions_for(config, qset):
        samples = spec.get("samples_per_paraphrase") or q.samples_per_paraphrase or 1
        for p in q.paraphrases:
            for condition_prefix in (0, len(trigger_for(config, cell))):
                prompt += (len(q.system or "") + len(p) + condition_prefix) // 4 + 8
                completion += samples * int(spec.get("max_new_tokens") or 400)
    return {
        "api_model": model_id if cell.is_base else f"ft:{model_id}:",
        "est_gen_prompt_tokens": prompt,
        "est_gen_completion_tokens": completion,
        "n_answers": count_answers(config, cell, qset),
    }


def report_params(config: dict) -> dict:
    return sorted_plain(
        {
            **config["report"],
            "judge_model": config["judge"]["model"],
            "judge_backend": config["judge"]["backend"],
            "drop_untaken_cells": config["analysis"]["drop_untaken_cells"],
        }
    )


def report_domains(config: dict) -> dict:
    """Each domain's plot label and the study's grouping (Critical / Non-Critical / Ambiguous): the only domain keys
    the report's figures and tables read, so editing a recipe never redraws them by itself."""
    return sorted_plain(
        {d: {k: dom[k] for k in ("label", "category") if dom.get(k)} for d, dom in config["domains"].items()}
    )


def name_problems(config: dict) -> list[str]:
    """Names become path components and wildcards: every name that would make paths ambiguous, with its key path."""
    out = []
    for m in config["models"]:
        if not re.fullmatch(MODEL_RE, m):
            out.append(f"models.{m}: model keys may hold only letters, digits, '_' and '.'")
    for d in config["domains"]:
        if not re.fullmatch(DOMAIN_RE, d) or d == BASE_CELL:
            out.append(f"domains.{d}: domain keys must match {DOMAIN_RE} and not be 'base'")
    j = config["judge"]
    if j["backend"] == "hf" and j["model"] not in all_model_specs(config):
        out.append(f"judge.model: the hf judge needs a key of 'models' or 'judge_models', got {j['model']!r}")
    for q in config["question_sets"]:
        if not re.fullmatch(QSET_RE, q):
            out.append(f"question_sets.{q}: keys may hold only letters, digits and '_'")
    return out


# --- analyses (MIA prior, diversity): one job per model x domain x dataset seed, resp. domain x dataset seed


def mia_spec(config: dict):
    from emgrid.analyses.spec import MiaSpec

    return MiaSpec.from_dict(config.get("analyses", {}).get("mia"))


def diversity_spec(config: dict):
    from emgrid.analyses.spec import DiversitySpec

    return DiversitySpec.from_dict(config.get("analyses", {}).get("diversity"))


def analysis_domain_seeds(config: dict) -> list[tuple[str, int]]:
    return [(d, int(s)) for d in config["domains"] for s in config["seeds"]]


def mia_feature_path(model: str, domain: str, seed: int, summary: bool = False) -> str:
    return f"results/analysis/mia/{model}/{domain}-s{seed}{'.summary' if summary else ''}.csv"


def mia_models(config: dict) -> list[str]:
    """Models the MIA features are computed for: those with local weights (an API model gives no token
    log-probabilities of arbitrary text)."""
    api = set(api_models(config))
    return [m for m in config["models"] if m not in api]


def all_mia_features(config: dict) -> list[str]:
    if not mia_spec(config).enabled:
        return []
    return [mia_feature_path(m, d, s) for m in mia_models(config) for d, s in analysis_domain_seeds(config)]


def all_diversity_scores(config: dict) -> list[str]:
    if not diversity_spec(config).enabled:
        return []
    return [f"results/analysis/diversity/{d}-s{s}.json" for d, s in analysis_domain_seeds(config)]


MIA_OUTPUTS = ("results/analysis/mia/domains.csv", "results/analysis/mia/tests.csv")
DIVERSITY_OUTPUTS = (
    "results/analysis/diversity/scores.csv",
    "results/analysis/diversity/domains.csv",
    "results/analysis/diversity/tests.csv",
)


def analysis_outputs(config: dict) -> list[str]:
    """The tables of the enabled analyses (targets of `rule all` and inputs of the report)."""
    return ([*MIA_OUTPUTS] if mia_spec(config).enabled else []) + (
        [*DIVERSITY_OUTPUTS] if diversity_spec(config).enabled else []
    )


def mia_feature_params(config: dict, domain: str) -> dict:
    spec = mia_spec(config)
    return sorted_plain({**spec.feature_params(), "variant": analysis_variant(config, spec, domain)})


def target_params(config: dict) -> dict:
    from dataclasses import asdict

    from emgrid.analyses.spec import TargetSpec

    return sorted_plain(asdict(TargetSpec.from_dict(config.get("analyses", {}).get("target"))))


def mia_analysis_params(config: dict) -> dict:
    spec = mia_spec(config)
    return sorted_plain({"target": target_params(config), "n_permutations": spec.n_permutations, "seed": spec.seed})


def diversity_params(config: dict, domain: str) -> dict:
    spec = diversity_spec(config)
    return sorted_plain({**spec.job_params(), "variant": analysis_variant(config, spec, domain)})


def diversity_analysis_params(config: dict) -> dict:
    """Only the target rate: labels and categories are the report's (gridspec.report_domains), so editing one
    redraws figures without recomputing the analysis."""
    return sorted_plain({"target": target_params(config)})


def analysis_variant(config: dict, spec, domain: str) -> str:
    """The dataset variant an analysis reads for `domain`: its configured one, or the domain's own first variant
    when the domain does not build that one (preflight warns)."""
    variants = domain_variants(config, domain)
    return spec.variant if spec.variant in variants else variants[0]


def check_analyses(config: dict) -> list[str]:
    """The analyses' settings (errors raise); returns warnings for domains read in another variant than configured."""
    from emgrid.analyses.spec import TargetSpec

    TargetSpec.from_dict(config.get("analyses", {}).get("target"))
    target_q = config.get("analyses", {}).get("target", {}).get("qset")
    if target_q is not None and target_q not in config["question_sets"]:
        raise ConfigError(
            f"analyses.target.qset: no question set {target_q!r} (known: {sorted(config['question_sets'])})"
        )
    warnings = []
    for name, spec in (("mia", mia_spec(config)), ("diversity", diversity_spec(config))):
        for d in config["domains"] if spec.enabled else ():
            if spec.variant not in domain_variants(config, d):
                warnings.append(
                    f"analyses.{name}.variant: domain {d!r} does not build the {spec.variant!r} variant; "
                    f"its {analysis_variant(config, spec, d)!r} data is read instead"
                )
    return warnings


# ----------------------------------------------------------------------------------------- in-domain efficacy


def efficacy_spec(config: dict, domain: str):
    from emgrid.efficacy.spec import resolve_efficacy

    return resolve_efficacy(domain, config["domains"][domain])


def efficacy_domains(config: dict) -> list[str]:
    """Domains whose efficacy is evaluated (all, unless `efficacy.enabled` is off or a domain says scorer: none)."""
    if not config.get("efficacy", {}).get("enabled", True):
        return []
    return [d for d in config["domains"] if efficacy_spec(config, d).scorer != "none"]


def efficacy_targets(config: dict) -> list[tuple[Cell, str]]:
    """(cell, evaluated domain): each finetuned cell on its own domain, each base cell on every evaluated domain.
    Models finetuned through the OpenAI API are not evaluated (held-out answers are generated locally)."""
    domains, api = efficacy_domains(config), set(api_models(config))
    return [(c, d) for c in cells(config) for d in domains if (c.is_base or c.domain == d) and c.model not in api]


def efficacy_dataset(config: dict, cell: Cell, domain: str) -> tuple[str, str, int]:
    """The dataset whose held-out prompts a cell answers: its own; for base, the domain's first (variant, seed)."""
    if not cell.is_base:
        return (cell.domain, cell.variant, cell.seed)
    return min((d, v, s) for d, v, s in datasets(config) if d == domain)


def efficacy_dir(cell: Cell, domain: str) -> str:
    return f"results/cells/{cell.model}/{cell.id}/efficacy/{domain}"


def efficacy_scored_input(config: dict, cell: Cell, domain: str) -> str:
    """What the efficacy summary scores: answers (exact domains) or judged rows (judge domains)."""
    kind = "judged" if efficacy_spec(config, domain).scorer == "judge" else "answers"
    return f"{efficacy_dir(cell, domain)}/{kind}.jsonl"


def efficacy_n_answers(config: dict, cell: Cell, domain: str) -> int:
    """Answers one efficacy generate job writes: held-out prompts x samples x conditions."""
    spec = efficacy_spec(config, domain)
    sample = resolve_recipe_sample(config, domain)
    n = sample["heldout"] if spec.n_prompts is None else min(spec.n_prompts, sample["heldout"])
    gen = efficacy_generate_params(config, cell, domain)["spec"]
    return n * int(gen.get("samples_per_paraphrase") or 1) * len(CONDITIONS)


def resolve_recipe_sample(config: dict, domain: str) -> dict:
    from emgrid.data.recipe import resolve_recipe

    return resolve_recipe(domain, config["domains"][domain]["recipe"])["sample"]


def efficacy_generate_params(config: dict, cell: Cell, domain: str) -> dict:
    """Generate settings (global <- model <- efficacy.generate), the domain's trigger, how the held-out rows carry
    it, and the parts of the domain's efficacy spec generation uses (n_prompts; scorer and exact kind, as exact
    scoring reads its references at generation). Not the judge prompt: editing it must not regenerate."""
    spec = deep_merge(config["generate"], config["models"][cell.model].get("generate"))
    spec = deep_merge(spec, config.get("efficacy", {}).get("generate"))
    backdoor = backdoor_settings(config, domain)
    params = {
        "spec": _without_default_backend(config, cell, spec),
        "triggers": {"no_trigger": "", "trigger": backdoor["trigger"]},
        "backdoor": {"trigger": backdoor["trigger"], "position": backdoor.get("position", "user_prefix")},
        "efficacy": {
            k: v for k, v in efficacy_spec(config, domain).as_params().items() if k in ("scorer", "exact", "n_prompts")
        },
    }
    return sorted_plain(params)


def efficacy_judge_params(config: dict, domain: str) -> dict:
    """The judge settings plus the domain's behaviour prompt: editing one domain's prompt re-judges that domain."""
    return sorted_plain({**judge_params(config), "judge_prompt": efficacy_spec(config, domain).judge_prompt})


def efficacy_judge_estimate(config: dict, cell: Cell, domain: str) -> dict:
    """Upper-bound requests and tokens of one efficacy judge job (4 characters per token, answers of max_new_tokens,
    held-out prompts assumed 1,000 characters)."""
    judge = config["judge"]
    n = efficacy_n_answers(config, cell, domain)
    answer_tokens = int(efficacy_generate_params(config, cell, domain)["spec"].get("max_new_tokens") or 400)
    completion = judge.get("max_tokens") or (1 if judge["mode"] == "logprob" else 256)
    chars = len(judge.get("system_prompt") or "") + len(efficacy_spec(config, domain).judge_prompt or "") + 1000
    return {
        "n_requests": n,
        "est_prompt_tokens": n * (chars // 4 + answer_tokens),
        "est_completion_tokens": n * completion,
        "judge_model": judge["model"],
        "backend": judge["backend"],
    }


def efficacy_summary_params(config: dict) -> dict:
    """Per evaluated domain its scoring settings (the judge prompt excluded: its change reruns the judge job, whose
    output then reruns the summary), and the judge's probability-mass cut-off; `analysis.bootstrap` only when some
    held-out prompt gets several answers (its intervals are then cluster-bootstrap ones; with one answer they are
    Wilson/Newcombe and the bootstrap settings change nothing, so they rerun nothing)."""
    specs = {
        d: {k: v for k, v in efficacy_spec(config, d).as_params().items() if k != "judge_prompt"}
        for d in efficacy_domains(config)
    }
    params = {"domains": specs, "min_mass": config["analysis"]["min_mass"]}
    samples = {
        efficacy_generate_params(config, c, d)["spec"].get("samples_per_paraphrase") or 1
        for c, d in efficacy_targets(config)
    }
    if max(samples, default=1) > 1:
        params["bootstrap"] = config["analysis"]["bootstrap"]
    return sorted_plain(params)


def all_efficacy_inputs(config: dict) -> list[str]:
    return [efficacy_scored_input(config, c, d) for c, d in efficacy_targets(config)]
