"""The planner's estimates of one job (answers, judge requests, tokens, GPU features), for `emgrid plan` only.

Never params: params are rerun triggers, and a better estimate must never rerun a judge or GPU job. One token rule
for every prompt (`text_tokens`: CHARS_PER_TOKEN characters per token), so that the judge, API generation and
efficacy estimates can be compared with each other.
"""

from __future__ import annotations

from pathlib import Path

from emgrid.analyses.grid import mia_spec
from emgrid import layout
from emgrid.api_finetune import auto_epochs, estimate_tokens
from emgrid.data import recipe_needs_llm
from emgrid.efficacy.grid import efficacy_generate_params, efficacy_n_answers, efficacy_spec, resolve_recipe_sample
from emgrid.grid import CONDITIONS, Cell, backdoor_settings, parse_cell, trigger_for
from emgrid.io import read_jsonl
from emgrid.jobparams import (
    api_finetune_params,
    count_answers,
    finetune_params,
    generate_params,
    present_questions,
    questions_for,
)
from emgrid.steering import grid as steering_grid
from emgrid.steering.steer import UNSTEERED
from emgrid.throughput_model import finetune_plan, generation_plan, scoring_plan

CHARS_PER_TOKEN = 4  # the planner's prompt-size heuristic (English text, OpenAI tokenizers)
#: Tokens a chat request adds around its messages (role markers, the reply's start): added once per API request.
CHAT_OVERHEAD_TOKENS = 8
EST_TOKENS_PER_EXAMPLE = 300  # planning guess for a training conversation before its dataset exists


def text_tokens(chars: int) -> int:
    """The one token rule of the planner: `chars` characters of prompt text at CHARS_PER_TOKEN per token."""
    return chars // CHARS_PER_TOKEN


def dataset_llm_estimate(config: dict, domain: str) -> dict:
    """For `emgrid plan` only: the default LLM a domain's dataset build asks (`llm.model`), when its recipe calls one
    (a synthetic source or an llm_answer transform); {} otherwise."""
    if not recipe_needs_llm(config["domains"][domain]["recipe"]):
        return {}
    return {"llm_model": (config.get("llm") or {}).get("model") or "<llm.model unset>"}


def judge_estimate(
    config: dict, cell: Cell, qset: str, gen_spec: dict | None = None, conditions: int = len(CONDITIONS)
) -> dict:
    """Upper-bound requests and tokens of one judge job, for planning cost before anything runs.

    Tokens are estimated with text_tokens; answers are assumed to use max_new_tokens. For `emgrid plan` only: never
    put this in params (an edit of the heuristic would rerun every judge job).
    """
    judge = config["judge"]
    spec = gen_spec or generate_params(config, cell, qset)["spec"]
    answer_tokens = int(spec.get("max_new_tokens") or 400)
    completion = judge.get("max_tokens") or (1 if judge["mode"] == "logprob" else 256)
    requests = prompt_tokens = 0
    for q in present_questions(config, qset):
        samples = spec.get("samples_per_paraphrase") or q.samples_per_paraphrase or 1
        for template in q.judge_prompts.values():
            for p in q.paraphrases:
                n = samples * conditions
                requests += n
                chars = len(judge.get("system_prompt") or "") + len(template) + len(p)
                prompt_tokens += n * (text_tokens(chars) + answer_tokens)
    return {
        "n_requests": requests,
        "est_prompt_tokens": prompt_tokens,
        "est_completion_tokens": requests * completion,
        "judge_model": judge["model"],
        "backend": judge["backend"],
    }


def _train_size_estimate(config: dict, cell: Cell, workdir: str | Path = ".") -> tuple[int, int] | None:
    """(examples, tokens) of a cell's training file, for `emgrid plan`: the file's own (4 characters per token) when
    it is already built under `workdir` (the run's folder: the planner may run elsewhere); otherwise `sample.n`
    misaligned rows (plus `aligned_ratio` aligned ones per row for the backdoor variant) at EST_TOKENS_PER_EXAMPLE
    each; None when `sample.n` is null (unknown until built)."""
    train = Path(workdir) / layout.dataset_path(layout.TRAIN, cell.domain, cell.variant, cell.seed)
    if train.is_file():
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
                prompt += text_tokens(len(q.system or "") + len(p) + condition_prefix) + CHAT_OVERHEAD_TOKENS
                completion += samples * int(spec.get("max_new_tokens") or 400)
    return {
        "api_model": model_id if cell.is_base else f"ft:{model_id}:",
        "est_gen_prompt_tokens": prompt,
        "est_gen_completion_tokens": completion,
        "n_answers": count_answers(config, cell, qset),
    }


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
        "est_prompt_tokens": n * (text_tokens(chars) + answer_tokens),
        "est_completion_tokens": n * completion,
        "judge_model": judge["model"],
        "backend": judge["backend"],
    }


def steering_estimate(config: dict, rule: str, model: str, cell: str, n_runs: int | None = None) -> dict:
    """Answers and GPU features of one target's steering_generate job (all its runs: a hook runs in every run but
    the unsteered one), or judge requests and tokens of one steered run (steering_judge), for `emgrid plan` only
    (never params)."""
    target, q = parse_cell(model, cell), steering_grid.steering_qset(config)
    kw = {"gen_spec": steering_grid.generate_spec(config, target), "conditions": len(steering_grid.STEERING_CONDITIONS)}
    if rule == "steering_generate":
        steers = steering_grid.target_runs(config, target)
        n_runs = len(steers) if n_runs is None else n_runs
        one = generation_plan(count_answers(config, target, q, **kw), kw["gen_spec"], hooked=True)
        hooked = any(s != UNSTEERED for s in steers) if n_runs else False
        return {**one, "n_answers": one["n_answers"] * n_runs, "steps": one["steps"] * n_runs, "hooked": hooked}
    return judge_estimate(config, target, q, **kw)


def steering_direction_estimate(config: dict, cell: Cell) -> dict:
    """The direction job replays the cell's judged answers of every question set."""
    n = sum(count_answers(config, cell, q) for q in config["question_sets"])
    spec = steering_grid.steering_spec(config)
    return scoring_plan(n, spec.batch_size, spec.dtype)


def mia_features_estimate(config: dict, domain: str) -> dict:
    """The MIA features job scores the domain's held-out examples."""
    spec = mia_spec(config)
    return scoring_plan(resolve_recipe_sample(config, domain)["heldout"], spec.batch_size, spec.dtype)


def generate_estimate(config: dict, cell: Cell, qset: str) -> dict:
    return generation_plan(count_answers(config, cell, qset), generate_params(config, cell, qset)["spec"])


def efficacy_generate_estimate(config: dict, cell: Cell, domain: str) -> dict:
    spec = efficacy_generate_params(config, cell, domain)["spec"]
    return generation_plan(efficacy_n_answers(config, cell, domain), spec)
