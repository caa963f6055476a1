"""The steering analysis on a grid: which directions and steered runs a config asks for, their paths, their
params (only plain values of the job's own cell that change its output), the whole-config check, and the
planner's estimates (emgrid.estimates.steering_estimate). Pure functions of the config, bound to the wildcards by
emgrid.gridspec.Grid."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from emgrid import jobparams, layout
from emgrid.errors import ConfigError
from emgrid.grid import FINETUNED_CELL_RE, Cell, cells, sorted_plain
from emgrid.jobparams import api_models, count_answers
from emgrid.models import known_layer_count
from emgrid.steering.spec import SteeringSpec
from emgrid.steering.steer import UNSTEERED, SteerJob, parse_steer

#: The steering runs are answered under this condition only (the targets are base and plain cells by default; the
#: trigger would add nothing but cost).
STEERING_CONDITIONS = ("no_trigger",)
SUMMARY_OUTPUTS = layout.STEERING_SUMMARY


def steering_spec(config: dict) -> SteeringSpec:
    return SteeringSpec.from_dict(config.get("analyses", {}).get("steering"))


def steering_qset(config: dict) -> str:
    return steering_spec(config).question_set or next(iter(config["question_sets"]))


def _local_cells(config: dict) -> list[Cell]:
    api = set(api_models(config))
    return [c for c in cells(config) if c.model not in api]


def _select(cells: list[Cell], selectors, seed: int | None) -> list[Cell]:
    """Cells picked by selectors: a variant (of `seed` when given), `base`, or a cell id; in grid order."""
    out = []
    for c in cells:
        for sel in selectors:
            if sel == c.id or (sel == "base" and c.is_base):
                out.append(c)
            elif sel == c.variant and (seed is None or c.seed == seed):
                out.append(c)
    return list(dict.fromkeys(out))


def sources(config: dict) -> list[Cell]:
    """The cells whose direction is extracted (local models only: API models have no residual stream to read)."""
    spec = steering_spec(config)
    if not spec.enabled:
        return []
    return [c for c in _select(_local_cells(config), spec.sources, None) if not c.is_base]


def targets(config: dict, source: Cell, cells: list[Cell] | None = None) -> list[Cell]:
    """The cells a source steers: same model; variant selectors pick cells with the source's seed. `cells`: the
    grid's local cells when the caller has them (listing them is most of the cost on a big grid)."""
    same_model = [c for c in (cells or _local_cells(config)) if c.model == source.model]
    return _select(same_model, steering_spec(config).targets, source.seed)


def runs(config: dict) -> list[tuple[Cell, str]]:
    """(target, steer id) of every steered run, plus each target's unsteered run; no repeats, in a stable order."""
    spec = steering_spec(config)
    cells = _local_cells(config)
    out: list[tuple[Cell, str]] = []
    for src in sources(config):
        for tgt in targets(config, src, cells):
            out.append((tgt, UNSTEERED))
            for layer in spec.layers:
                for scale in spec.steered_scales:
                    out.append((tgt, SteerJob("add", src.id, layer, scale).id))
                    if spec.random_control:
                        out.append((tgt, SteerJob("random", src.id, layer, scale).id))
                if spec.ablate:
                    out.append((tgt, SteerJob("ablate", src.id, layer).id))
    return list(dict.fromkeys(out))


def runs_by_target(config: dict) -> dict[Cell, list[str]]:
    """{target: its steer ids in `runs` order}: each target's runs are one steering_generate job. The workflow
    computes this once (emgrid.gridspec.Grid) and passes a target's list to the functions below: listing the runs of a big
    grid once per job and function would add seconds per hundred jobs to every dry run."""
    out: dict[Cell, list[str]] = {}
    for target, steer in runs(config):
        out.setdefault(target, []).append(steer)
    return out


def generate_targets(config: dict) -> list[Cell]:
    """The target cells, each answered by one steering_generate job (one model load for all its runs)."""
    return list(runs_by_target(config))


def target_runs(config: dict, target: Cell) -> list[str]:
    """The steer ids of one target's runs, in `runs` order."""
    return runs_by_target(config).get(target, [])


def target_sources(steers: list[str]) -> list[str]:
    """The source cells whose direction a target's runs (`steers`) apply: the job's direction inputs."""
    return list(dict.fromkeys(parse_steer(s).source for s in steers if s != UNSTEERED))


def answers_path(target: Cell, qset: str) -> str:
    """Every run's answers of one target, in one file (each row says its run in `steer`)."""
    return layout.cell_path(layout.STEERING_ANSWERS, target, qset=qset)


def runs_path(target: Cell, qset: str) -> str:
    """The index written beside the answers: {steer id: {key, answers, skipped}} (emgrid.steering.runs)."""
    return layout.cell_path(layout.STEERING_RUNS, target, qset=qset)


def read_run_key(path: str | Path, steer: str) -> str | None:
    """One run's answer-cache key from a target's index, or None while there is none (not generated yet, or a file
    from before the index existed). A steering_judge param: it changes exactly when the run's answers do."""
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return (index.get(steer) or {}).get("key")


def cache_dir(config: dict) -> str:
    """The steered answers' cache (`<cache_dir>/steering`, emgrid.steering.runs): outside results/, read by the
    script from the config, never a param (moving it reruns nothing)."""
    return str(Path(config["cache_dir"]) / "steering")


def direction_qsets(config: dict) -> list[str]:
    """The question sets whose judged answers a direction is extracted from: the direction job's only judged inputs,
    so that re-judging another set (a judge-prompt edit there) reruns no direction and no steered run."""
    chosen = steering_spec(config).direction_question_sets
    return list(config["question_sets"]) if chosen is None else list(chosen)


def direction_paths(model: str, cell: str) -> dict[str, str]:
    return {
        "json": layout.DIRECTION_JSON.format(model=model, cell=cell),
        "npz": layout.DIRECTION_NPZ.format(model=model, cell=cell),
    }


def all_judged(config: dict) -> list[str]:
    q = steering_qset(config)
    return [layout.cell_path(layout.STEERING_JUDGED, t, steer=s, qset=q) for t, s in runs(config)]


def all_directions(config: dict) -> list[str]:
    return [p for c in sources(config) for p in direction_paths(c.model, c.id).values()]


def summary_outputs(config: dict) -> list[str]:
    return list(SUMMARY_OUTPUTS.values()) if sources(config) else []


def generate_spec(config: dict, target: Cell) -> dict:
    """Generate settings of a steered run: global <- model <- the question set's <- `samples_per_paraphrase`."""
    q = steering_qset(config)
    spec = jobparams.generate_params(config, target, q)["spec"]
    n = steering_spec(config).samples_per_paraphrase
    return {**spec, "samples_per_paraphrase": n} if n is not None else spec


def direction_params(config: dict) -> dict:
    """What a direction depends on besides its inputs: the set thresholds, subsample seed, replay settings and the
    judge's probability-mass cut-off (scores come from it). Not layers, scales or targets."""
    return sorted_plain({**steering_spec(config).direction_params(), "min_mass": config["analysis"]["min_mass"]})


def run_params(config: dict, target: Cell, steer: str, spec: dict | None = None) -> dict:
    """One run's generate settings; the control's seed only for random runs (nothing else depends on it). `spec`:
    the target's generate_spec when the caller has it."""
    job = parse_steer(steer)
    seed = steering_spec(config).seed if job.kind == "random" else None
    return sorted_plain({"spec": spec or generate_spec(config, target), "seed": seed})


def generate_params(config: dict, target: Cell, steers: list[str] | None = None) -> dict:
    """{steer id: run_params} of every run of the target (`steers`, default target_runs): what its one job answers.
    Any run added or changed reruns the job; the answer cache (emgrid.steering.runs) makes unchanged runs free."""
    spec = generate_spec(config, target)
    steers = target_runs(config, target) if steers is None else steers
    return {steer: run_params(config, target, steer, spec) for steer in steers}


#: Runtime of a steering_generate job: minutes for starting and loading the model, plus seconds per planned answer.
#: 1 s per answer is 4x the H200's measured 7B rate for the longest answers (max_new_tokens 400 + prompt, 1,934
#: tokens/s, docs/gpu.md), room for slower GPUs; retries multiply it by the attempt.
RUNTIME_LOAD_MIN = 20
RUNTIME_S_PER_ANSWER = 1.0


def n_answers(config: dict, target: Cell, n_runs: int | None = None) -> int:
    """Answers one steering_generate job plans: its runs (`n_runs`, default: counted) x the answers of one run (a
    source without a direction gives fewer; the plan cannot know that before the directions exist)."""
    q = steering_qset(config)
    kw = {"gen_spec": generate_spec(config, target), "conditions": len(STEERING_CONDITIONS)}
    n_runs = len(target_runs(config, target)) if n_runs is None else n_runs
    return n_runs * count_answers(config, target, q, **kw)


def generate_minutes(config: dict, target: Cell, n_runs: int | None = None) -> int:
    """The job's `runtime` (attempt 1), growing with its answers: the planner's upper bound is runtime x GPUs."""
    return RUNTIME_LOAD_MIN + math.ceil(n_answers(config, target, n_runs) * RUNTIME_S_PER_ANSWER / 60)


def answers_plan(config: dict, target: Cell) -> dict:
    n = generate_spec(config, target).get("samples_per_paraphrase")
    return {"conditions": list(STEERING_CONDITIONS), "samples_per_paraphrase": n}


#: The `analysis` keys the steering summary reads (emgrid.steering.matrix.summarize_files): the misalignment
#: criterion, the judge's probability-mass cut-off and the bootstrap. Not alpha (no adjusted p-values), the
#: sensitivity threshold (no sensitivity rate) or drop_untaken_cells, so editing those does not rerun it.
SUMMARY_ANALYSIS_KEYS = ("aligned_below", "coherent_above", "min_mass", "bootstrap")


def summary_params(config: dict) -> dict:
    analysis = {k: config["analysis"][k] for k in SUMMARY_ANALYSIS_KEYS}
    return sorted_plain({"analysis": analysis, "layers": list(steering_spec(config).layers)})


def check(config: dict) -> list[str]:
    """Errors (raised, naming the key) for settings that cannot work; returns warnings for what cannot be checked
    before the jobs run (a hub model's layer count)."""
    spec = steering_spec(config)
    where = "analyses.steering"
    if not spec.enabled:
        return []
    if spec.question_set is not None and spec.question_set not in config["question_sets"]:
        raise ConfigError(
            f"{where}.question_set: no question set {spec.question_set!r} (known: {sorted(config['question_sets'])})"
        )
    for i, q in enumerate(spec.direction_question_sets or ()):
        if q not in config["question_sets"]:
            raise ConfigError(
                f"{where}.direction_question_sets[{i}]: no question set {q!r} (known: {sorted(config['question_sets'])})"
            )
    ids = {c.id for c in cells(config)}
    for key in ("sources", "targets"):
        for i, sel in enumerate(getattr(spec, key)):
            if re.fullmatch(FINETUNED_CELL_RE, sel) and sel not in ids:
                raise ConfigError(f"{where}.{key}[{i}]: no cell {sel!r} in this grid")
    return _check_layers(config, spec, where)


def _check_layers(config: dict, spec: SteeringSpec, where: str) -> list[str]:
    warnings = []
    for model in sorted({c.model for c in sources(config)}):
        n = known_layer_count(config["models"][model])
        if n is None:
            warnings.append(
                f"{where}.layers: the layer count of model {model!r} is not known before it is downloaded; a layer "
                "it lacks fails its steering jobs"
            )
            continue
        for i, layer in enumerate(spec.layers):
            if layer >= n:
                raise ConfigError(
                    f"{where}.layers[{i}]: layer {layer} out of range for model {model!r} with {n} decoder layers "
                    f"(0..{n - 1})"
                )
    return warnings
