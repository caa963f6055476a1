"""The grid's jobs as the workflow sees them: one `Grid(config)` object whose methods take a job's wildcards and
return its params, inputs and planner estimate, so that a rule names `G.finetune_params` directly.

Snakemake reruns a job when the repr of its params changes. So every params method returns only values that belong
to one cell (never the whole config), with dict keys sorted so that reordering the config file changes nothing: the
values come from emgrid.jobparams and the analyses', efficacy and steering grids; this module only binds them to
the config and the wildcards, and says what reruns a job at all (RERUN_TRIGGERS, CODE_VERSIONS).
"""

from __future__ import annotations

from typing import Any, Callable

from emgrid import estimates, jobparams, layout
from emgrid.analyses import grid as analyses_grid
from emgrid.efficacy import grid as efficacy_grid
from emgrid.errors import ConfigError
from emgrid.grid import Cell, all_model_specs, cells, datasets, judge_model_key, models_re, parse_cell
from emgrid.steering import grid as steering_grid
from emgrid.steering.steer import UNSTEERED, parse_steer

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
CODE_VERSIONS: dict[str, int] = {
    # Issue 21: the primary intervals (cluster-robust t over questions: quasi-score rates, two-part means), t intervals
    # of the trigger effect, its difference in differences and mean drop, tied ranks, joint question draws. 2: the
    # between-question part of the rate interval's variance takes the larger of its two models (2026-12-06).
    "aggregate": 2,
    "steering_summary": 1,  # the steering delta's interval: the paired effect's t interval over questions
    "efficacy_summary": 2,  # several answers per prompt: the primary rate interval with prompts as clusters
    "mia_analysis": 1,  # the domain-level AUC by leave-pair-out cross-validation, its permutation p-value too
    "diversity_analysis": 1,  # the same AUC estimator
    "plots": 1,  # the ranking figure's axis names the primary interval, not a fixed 95 %
}


def code_version(rule: str) -> dict[str, int]:
    """The params entry that carries `rule`'s code version: `{"code_version": n}`, or nothing at version 0.

    Nothing at 0, so that this mechanism's own introduction is no params change: Snakemake compares the recorded
    params with the new ones, and an added `code_version=0` would rerun every job of every existing run once."""
    version = CODE_VERSIONS.get(rule, 0)
    return {"code_version": version} if version else {}


class Grid:
    """The jobs of one config. Built once per workflow (common.smk: `G`); what every job of a rule needs that does
    not depend on its wildcards (the cells, the API models, the steering runs) is computed here once, as listing
    them per job would add seconds per hundred jobs to every dry run of a big grid.

    `resolve_path` makes a config path absolute (common.smk: the working directory, else the repository);
    `ancient` is Snakemake's marker for inputs whose timestamp triggers nothing.
    """

    def __init__(
        self, config: dict, resolve_path: Callable[[str], str] = str, ancient: Callable[[str], Any] = lambda p: p
    ):
        self.config, self.resolve_path, self.ancient = config, resolve_path, ancient
        self.cells = cells(config)
        self.judge_model = judge_model_key(config)
        # Models finetuned and queried through the OpenAI API get their own finetune/generate rules (no GPU).
        self.api_models = jobparams.api_models(config)
        self.api_model_re = models_re(self.api_models)
        self.local_model_re = models_re([m for m in all_model_specs(config) if m not in self.api_models])
        # hf judges run a model: a GPU job. openai-batch judges wait on the Batch API's window (up to 24 h): a local
        # rule, so that no cluster allocation is held while they poll. openai judges: one core and one slot of the
        # openai_calls cap.
        self.judge_on_gpu = config["judge"]["backend"] == "hf"
        self.judge_local = config["judge"]["backend"] == "openai-batch"
        self.efficacy_domains = efficacy_grid.efficacy_domains(config)
        self.mia, self.diversity = analyses_grid.mia_spec(config), analyses_grid.diversity_spec(config)
        # {target cell: its steer ids}: each target's runs are one steering_generate job
        self.steering_runs = steering_grid.runs_by_target(config)

    @staticmethod
    def cell(wildcards) -> Cell:
        return parse_cell(wildcards.model, wildcards.cell)

    # --- models, datasets, finetuning

    def model_spec(self, wildcards) -> dict:
        return jobparams.model_spec(self.config, wildcards.model)

    def dataset_params(self, wildcards) -> dict:
        return jobparams.dataset_params(self.config, wildcards.domain, wildcards.variant, int(wildcards.seed))

    def dataset_inputs(self, wildcards) -> list[str]:
        """Local files a recipe reads: an edit to one of them rebuilds that dataset only."""
        recipe = self.config["domains"][wildcards.domain]["recipe"]
        return [self.resolve_path(p) for p in jobparams.recipe_files(recipe)]

    def finetune_train(self, wildcards) -> str:
        cell = self.cell(wildcards)
        return layout.dataset_path(layout.TRAIN, cell.domain, cell.variant, cell.seed)

    def finetune_params(self, wildcards) -> dict:
        return jobparams.finetune_params(self.config, self.cell(wildcards))

    def api_finetune_params(self, wildcards) -> dict:
        return jobparams.api_finetune_params(self.config, self.cell(wildcards))

    # --- generation and judging of the question sets

    def question_file(self, wildcards):
        """The question file, or nothing while it is missing (preflight warned; the job then names the path)."""
        if jobparams.question_file_missing(self.config, wildcards.qset):
            return []
        # its mtime is ignored: the question digests (question_content) decide what an edit of it reruns
        return self.ancient(jobparams.question_set(self.config, wildcards.qset)["path"])

    def generate_questions(self, wildcards) -> str:
        return jobparams.question_content(self.config, wildcards.qset, "generate")

    def judge_questions(self, wildcards) -> str:
        return jobparams.question_content(self.config, wildcards.qset, "judge")

    def question_options(self, wildcards) -> dict:
        return jobparams.question_options(self.config, wildcards.qset)

    def generate_inputs(self, wildcards) -> dict:
        cell = self.cell(wildcards)
        inputs = {"manifest": layout.MANIFEST.format(model=cell.model), "questions": self.question_file(wildcards)}
        if not cell.is_base and cell.model in self.api_models:
            inputs["finetune"] = layout.cell_path(layout.FINETUNE_METRICS, cell)  # holds the finetuned model id
        elif not cell.is_base:
            inputs["adapter"] = layout.cell_path(layout.ADAPTER, cell)
        return inputs

    def generate_params(self, wildcards) -> dict:
        return jobparams.generate_params(self.config, self.cell(wildcards), wildcards.qset)

    def judge_inputs(self, wildcards) -> dict:
        answers = layout.ANSWERS.format(model=wildcards.model, cell=wildcards.cell, qset=wildcards.qset)
        inputs = {"answers": answers, "questions": self.question_file(wildcards)}
        if self.judge_model is not None:
            inputs["judge_manifest"] = layout.MANIFEST.format(model=self.judge_model)
        return inputs

    def judge_params(self, wildcards) -> dict:
        return jobparams.judge_params(self.config)

    def answers_plan(self, wildcards) -> dict:
        return jobparams.answers_plan(self.config, self.cell(wildcards), wildcards.qset)

    def all_judged(self, wildcards=None) -> list[str]:
        return [layout.judged_path(c, q) for c in self.cells for q in self.config["question_sets"]]

    def all_answers(self, wildcards=None) -> list[str]:
        """The answers file of each judged file of `all_judged`, in the same order."""
        return [layout.answers_path(c, q) for c in self.cells for q in self.config["question_sets"]]

    # --- aggregation and the report

    def aggregate_inputs(self, wildcards) -> dict:
        """The judged files; plus the efficacy table when analysis.drop_untaken_cells filters the cell set."""
        # answers: to check that every answer has its judged rows
        inputs = {"judged": self.all_judged(), "answers": self.all_answers()}
        if self.config["analysis"]["drop_untaken_cells"] and self.efficacy_domains:
            inputs["efficacy"] = layout.EFFICACY_CSV
        return inputs

    def analysis_params(self, wildcards) -> dict:
        return jobparams.analysis_params(self.config)

    def report_params(self, wildcards) -> dict:
        return jobparams.report_params(self.config)

    def report_domains(self, wildcards) -> dict:
        return jobparams.report_domains(self.config)

    def report_title(self, wildcards) -> str:
        return self.config["report"]["title"]

    def all_cards(self, wildcards=None) -> list[str]:
        return [layout.dataset_path(layout.CARD, d, v, s) for d, v, s in datasets(self.config)]

    def all_finetune_metrics(self, wildcards=None) -> list[str]:
        return [layout.cell_path(layout.FINETUNE_METRICS, c) for c in self.cells if not c.is_base]

    def model_finetune_metrics(self, wildcards) -> list[str]:
        cells = [c for c in self.cells if not c.is_base and c.model == wildcards.model]
        return [layout.cell_path(layout.FINETUNE_METRICS, c) for c in cells]

    def probe_qsets(self) -> list[str]:
        return jobparams.probe_qsets(self.config)

    # --- the analyses (MIA prior, diversity)

    def mia_features_params(self, wildcards) -> dict:
        return analyses_grid.mia_feature_params(self.config, wildcards.domain)

    def mia_heldout(self, wildcards) -> str:
        variant = analyses_grid.analysis_variant(self.config, analyses_grid.mia_spec(self.config), wildcards.domain)
        return layout.dataset_path(layout.HELDOUT, wildcards.domain, variant, wildcards.seed)

    def mia_analysis_params(self, wildcards) -> dict:
        return analyses_grid.mia_analysis_params(self.config)

    def all_mia_features(self, wildcards) -> list[str]:
        return analyses_grid.all_mia_features(self.config)

    def diversity_params(self, wildcards) -> dict:
        return analyses_grid.diversity_params(self.config, wildcards.domain)

    def diversity_input(self, wildcards) -> str:
        spec = analyses_grid.diversity_spec(self.config)
        variant = analyses_grid.analysis_variant(self.config, spec, wildcards.domain)
        split = layout.DATASET_DIR + f"/{spec.split}.jsonl"
        return layout.dataset_path(split, wildcards.domain, variant, wildcards.seed)

    def diversity_analysis_params(self, wildcards) -> dict:
        return analyses_grid.diversity_analysis_params(self.config)

    def all_diversity_scores(self, wildcards) -> list[str]:
        return analyses_grid.all_diversity_scores(self.config)

    def mia_models(self) -> list[str]:
        return analyses_grid.mia_models(self.config)

    def analysis_outputs(self) -> list[str]:
        return analyses_grid.analysis_outputs(self.config)

    # --- in-domain efficacy

    def efficacy_cell(self, wildcards) -> Cell:
        cell = self.cell(wildcards)
        if wildcards.domain not in self.efficacy_domains or not (cell.is_base or cell.domain == wildcards.domain):
            raise ConfigError(f"no efficacy evaluation of cell {cell.id} on domain {wildcards.domain}")
        return cell

    def efficacy_generate_inputs(self, wildcards) -> dict:
        cell = self.efficacy_cell(wildcards)
        d, v, s = efficacy_grid.efficacy_dataset(self.config, cell, wildcards.domain)
        inputs = {
            "manifest": layout.MANIFEST.format(model=cell.model),
            "heldout": layout.dataset_path(layout.HELDOUT, d, v, s),
        }
        if not cell.is_base:
            inputs["adapter"] = layout.cell_path(layout.ADAPTER, cell)
        return inputs

    def efficacy_generate_params(self, wildcards) -> dict:
        return efficacy_grid.efficacy_generate_params(self.config, self.efficacy_cell(wildcards), wildcards.domain)

    def efficacy_judge_inputs(self, wildcards) -> dict:
        self.efficacy_cell(wildcards)
        w = wildcards
        inputs = {"answers": layout.EFFICACY_ANSWERS.format(model=w.model, cell=w.cell, domain=w.domain)}
        if self.judge_model is not None:
            inputs["judge_manifest"] = layout.MANIFEST.format(model=self.judge_model)
        return inputs

    def efficacy_judge_params(self, wildcards) -> dict:
        return efficacy_grid.efficacy_judge_params(self.config, wildcards.domain)

    def all_efficacy_inputs(self, wildcards) -> list[str]:
        return efficacy_grid.all_efficacy_inputs(self.config)

    def efficacy_summary_params(self, wildcards) -> dict:
        return efficacy_grid.efficacy_summary_params(self.config)

    def efficacy_table(self, wildcards=None) -> list[str]:
        return [layout.EFFICACY_CSV] if self.efficacy_domains else []

    # --- steering: directions of source cells, steered runs on target cells (docs/steering.md)

    def steering_direction_inputs(self, wildcards) -> dict:
        """The cell's model and adapter, and its judged answers (replayed, not regenerated) of the question sets the
        direction reads (steering_grid.direction_qsets): re-judging any other set reruns no steering job."""
        cell = self.cell(wildcards)
        return {
            "manifest": layout.MANIFEST.format(model=cell.model),
            "adapter": layout.cell_path(layout.ADAPTER, cell),
            "judged": [layout.judged_path(cell, q) for q in steering_grid.direction_qsets(self.config)],
        }

    def steering_direction_params(self, wildcards) -> dict:
        return steering_grid.direction_params(self.config)

    def steering_source_direction(self, wildcards) -> dict:
        """The source's direction files of one steered run (none for the unsteered run)."""
        job = parse_steer(wildcards.steer)
        return {} if job.kind == UNSTEERED else steering_grid.direction_paths(wildcards.model, job.source)

    def steering_generate_inputs(self, wildcards) -> dict:
        """The target's model (and adapter), its question file, and the directions of every source steering it."""
        inputs = self.generate_inputs(wildcards)
        steers = self.steering_runs.get(self.cell(wildcards), [])
        paths = [steering_grid.direction_paths(wildcards.model, s) for s in steering_grid.target_sources(steers)]
        inputs["direction_json"] = [p["json"] for p in paths]
        inputs["direction_npz"] = [p["npz"] for p in paths]
        return inputs

    def steering_generate_params(self, wildcards) -> dict:
        cell = self.cell(wildcards)
        return steering_grid.generate_params(self.config, cell, self.steering_runs.get(cell, []))

    def steering_generate_runtime(self, wildcards, attempt) -> int:
        """Minutes of one target's steering_generate job: grows with its runs' answers (and with each retry)."""
        cell = self.cell(wildcards)
        return attempt * steering_grid.generate_minutes(self.config, cell, len(self.steering_runs.get(cell, [])))

    def steering_judge_inputs(self, wildcards) -> dict:
        inputs = self.judge_inputs(wildcards)
        del inputs["answers"]  # common.smk's steering_judge_answers
        direction = self.steering_source_direction(wildcards)
        if direction:
            inputs["direction"] = direction["json"]  # says whether the source had a direction (else: no answers)
        return inputs

    def steering_answers_key(self, wildcards) -> str | None:
        """This run's answer-cache key (everything its answers depend on) as its steering_generate job last wrote it:
        a param, so the judge reruns exactly when its run's answers changed (None before the first generate)."""
        path = steering_grid.runs_path(self.cell(wildcards), wildcards.qset)
        return steering_grid.read_run_key(path, wildcards.steer)

    def steering_plan(self, wildcards) -> dict:
        return steering_grid.answers_plan(self.config, self.cell(wildcards))

    def steering_summary_inputs(self, wildcards) -> dict:
        directions = [steering_grid.direction_paths(c.model, c.id) for c in steering_grid.sources(self.config)]
        return {
            "judged": steering_grid.all_judged(self.config),
            "direction_json": [p["json"] for p in directions],
            "direction_npz": [p["npz"] for p in directions],
        }

    def steering_summary_params(self, wildcards) -> dict:
        return steering_grid.summary_params(self.config)

    def steering_outputs(self) -> list[str]:
        return steering_grid.summary_outputs(self.config)

    # --- the planner

    def plan_estimate(self, rule_name: str, wildcards) -> dict:
        """Answers, judge requests and tokens of one job, for `emgrid plan` only (its DAG reader calls this).

        Not params: params are rerun triggers, and a better estimate must never rerun a judge or GPU job. Built files
        are read under the working directory, which snakemake has set to the run's folder (`--directory`, `workdir:`).
        """
        config, w = self.config, wildcards
        by_cell = {
            "finetune": estimates.finetune_estimate,  # tokens it will train on: the GPU-hours estimate
            "finetune_openai": estimates.api_finetune_estimate,  # trained tokens this job will pay for
            "steering_direction": estimates.steering_direction_estimate,  # replays the cell's judged answers
        }
        by_qset = {
            "generate": estimates.generate_estimate,
            "judge": estimates.judge_estimate,
            "generate_openai": estimates.api_generate_estimate,  # prompt and completion tokens it pays for at most
        }
        by_domain = {
            "efficacy_generate": estimates.efficacy_generate_estimate,
            "efficacy_judge": estimates.efficacy_judge_estimate,
        }
        if rule_name == "build_dataset":  # which LLM it asks, if any: the plan says these requests are not priced
            return estimates.dataset_llm_estimate(config, w.domain)
        if rule_name in by_cell:
            return by_cell[rule_name](config, self.cell(w))
        if rule_name in by_qset:
            return by_qset[rule_name](config, self.cell(w), w.qset)
        if rule_name in by_domain:
            return by_domain[rule_name](config, self.efficacy_cell(w), w.domain)
        if rule_name in ("steering_generate", "steering_judge"):
            n_runs = len(self.steering_runs.get(self.cell(w), []))
            return estimates.steering_estimate(config, rule_name, w.model, w.cell, n_runs)
        if rule_name == "mia_features":  # scores the domain's held-out examples
            return estimates.mia_features_estimate(config, w.domain)
        return {}
