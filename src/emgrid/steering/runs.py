"""Every steered run of one target cell in one job: the target model is loaded once, and only when some run's
answers are not in the answer cache; each run's hook is put on the model around that run's generation alone.

Why a cache: loading a 7B model per (source, layer, scale) run cost as much as answering it, so one job answers all
runs of its target. Snakemake then reruns that job whenever any of its runs is added or changed (its params list
them all). Each run's answers are therefore stored under a key that hashes everything that determines them: the
target model (its manifest and the adapter's file digests), the exact array the hook applies and its layer, the
decoding settings and the planned prompts (rows, messages, temperatures). A rerun regenerates only the runs whose
key is new (a new scale, layer or source; or a changed direction, adapter or decoding setting), and `rm -rf results`
regenerates nothing. The source's id is not in the key: two runs that apply the same array give the same answers.
Like the LLM response cache, entries are never invalidated by a code change of the generation itself.

Layout: `<cache_dir>/steering/ab/<key>.jsonl`, one answer row per line (without the run's `steer` field), written
atomically (temp file + rename): concurrent jobs never see half an entry, and two jobs writing a key write the same.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from emgrid.errors import DataError
from emgrid.generation.hf import answer_rows
from emgrid.generation.plan import GenerateSpec, PromptItem, plan_prompts
from emgrid.io import canonical_json, iter_jsonl, read_json, sha256_file, write_jsonl
from emgrid.models import load_model, load_tokenizer
from emgrid.steering.steer import UNSTEERED, hook_array, parse_steer, steer_context
from emgrid.throughput_model import forward_features

log = logging.getLogger(__name__)
#: Bumped when what a cache entry holds changes, so old entries are never read as new ones.
CACHE_FORMAT = "steering-answers-1"
CONDITIONS = {"no_trigger": ""}


class AnswerCache:
    """Content-addressed answers of steered runs: `root/ab/<key>.jsonl`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.jsonl"

    def get(self, key: str, n_rows: int) -> list[dict] | None:
        """The cached rows of `key`, or None when absent or not the `n_rows` planned (then logged and regenerated)."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            rows = [row for _, row in iter_jsonl(p)]
        except DataError as e:
            log.warning("steering answer cache entry %s is unreadable (%s); generating it again", p, e)
            return None
        if len(rows) != n_rows:
            log.warning(
                "steering answer cache entry %s holds %d rows, not %d; generating it again", p, len(rows), n_rows
            )
            return None
        return rows

    def put(self, key: str, rows: list[dict]) -> None:
        write_jsonl(self.path(key), rows)


def model_identity(manifest_path: str | Path, adapter_dir: str | Path | None) -> dict[str, Any]:
    """The target model as the cache key sees it: the manifest's content and each adapter file's digest (a retrained
    adapter has new weights, hence a new key, even when its path is the same)."""
    adapter = {}
    if adapter_dir is not None:
        root = Path(adapter_dir)
        adapter = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    return {"manifest": read_json(manifest_path), "adapter": adapter}


def run_key(model: dict, layer: int | None, kind: str, array: np.ndarray | None, spec: GenerateSpec, items) -> str:
    """sha256 of everything that determines a run's answers (see the module docstring)."""
    hook = None
    if array is not None:
        data = np.ascontiguousarray(array, dtype=np.float64)
        hook = {"layer": layer, "ablate": kind == "ablate", "array": hashlib.sha256(data.tobytes()).hexdigest()}
    prompts = [[it.row, list(it.messages), it.temperature] for it in items]
    payload = {"format": CACHE_FORMAT, "model": model, "hook": hook, "spec": vars(spec), "prompts": prompts}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass
class RunsResult:
    """Answer rows per steer id (empty for a source without a direction), the rows generated in this job (the rest
    came from the cache), the runs skipped with their reason, and how many times the model was loaded (0 or 1)."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    generated: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    loads: int = 0
    generated_runs: dict[str, int] = field(default_factory=dict)  # answers generated per steer id (throughput)

    def generated_features(self, runs: dict[str, dict]) -> dict:
        """Throughput features of what this job generated (emgrid.throughput_model): each generated run decodes in
        its own batches, and a hook ran in every one but the unsteered run. `runs`: the job's {steer: run params}."""
        specs = {steer: GenerateSpec.from_dict(runs[steer]["spec"]) for steer in self.generated_runs}
        steps = sum(
            forward_features(n, specs[s].batch_size, specs[s].max_new_tokens, specs[s].dtype)["steps"]
            for s, n in self.generated_runs.items()
        )
        hooked = any(steer != UNSTEERED for steer in self.generated_runs)
        dtype = next(iter(specs.values())).dtype if specs else "float32"
        return {**forward_features(0, 1, 1, dtype, hooked), "steps": steps}

    def index(self) -> dict[str, dict]:
        """{steer id: {key, answers, skipped}}: the job's `runs` output, whose keys tell Snakemake (through the
        judge's params) which runs' answers changed."""
        return {
            steer: {"key": self.keys.get(steer), "answers": len(rows), "skipped": self.skipped.get(steer)}
            for steer, rows in self.rows.items()
        }


class _Target:
    """The target model and tokenizer, loaded on first use only: a job whose runs are all cached loads nothing."""

    def __init__(self, manifest_path, adapter_dir, dtype: str):
        self.args, self.dtype, self.loaded, self.loads = (manifest_path, adapter_dir), dtype, None, 0

    def get(self):
        if self.loaded is None:
            manifest_path, adapter_dir = self.args
            print(f"loading the target model once for this job ({manifest_path})", file=sys.stderr, flush=True)
            tok = load_tokenizer(manifest_path, padding_side="left")
            self.loaded = (load_model(manifest_path, adapter_dir, dtype=self.dtype), tok)
            self.loads += 1
        return self.loaded


def answer_runs(
    manifest_path: str | Path,
    adapter_dir: str | Path | None,
    questions: Iterable[Any],
    runs: dict[str, dict],
    directions: dict[str, Any],
    cache_dir: str | Path,
    *,
    model: str,
    cell: str,
    qset: str,
) -> RunsResult:
    """Answer rows of every steered run of one target (no-trigger condition), each row with `steer` = its run.

    `runs` = {steer id: grid.generate_params (spec, seed)}; `directions` = {source cell: read_direction result}.
    A source without a direction (`not_enough`) gives its runs no rows. Runs whose key is in `cache_dir` are read
    back; the others are generated with one model load for the whole job, the run's hook active only around its own
    generation (the hooks are removed on exit, so runs never see each other's).
    """
    questions = list(questions)
    cache, result = AnswerCache(cache_dir), RunsResult()
    specs = {steer: GenerateSpec.from_dict(params["spec"]) for steer, params in runs.items()}
    dtypes = sorted({s.dtype for s in specs.values()})
    if len(dtypes) > 1:  # one model load serves every run: they must agree on its weights' dtype
        raise DataError(f"steered runs of {model}/{cell} ask for different dtypes {dtypes}; one load serves all")
    target = _Target(manifest_path, adapter_dir, dtypes[0] if dtypes else "float32")
    identity = None  # hashed on the first run that has a direction: a job of skipped runs reads no file
    for steer, params in runs.items():
        job, spec = parse_steer(steer), specs[steer]
        direction = directions.get(job.source) if job.kind != UNSTEERED else None
        if job.kind != UNSTEERED and (direction is None or not direction.ok):
            reason = "no direction file" if direction is None else direction.meta.get("reason")
            result.rows[steer], result.skipped[steer] = [], f"no direction of {job.source}: {reason}"
            continue
        identity = identity or model_identity(manifest_path, adapter_dir)
        array = hook_array(job, direction, params["seed"])
        items = plan_prompts(questions, spec, CONDITIONS, model, cell, qset)
        key = run_key(identity, job.layer, job.kind, array, spec, items)
        result.keys[steer] = key
        rows = cache.get(key, len(items))
        if rows is None:
            rows = _generate(target, items, spec, steer_context(job, direction, params["seed"]), cell, qset)
            cache.put(key, rows)
            result.generated.extend(rows)
            result.generated_runs[steer] = len(rows)
        result.rows[steer] = [{**r, "steer": job.as_dict()} for r in rows]
    result.loads = target.loads
    return result


def _generate(target: _Target, items: list[PromptItem], spec: GenerateSpec, steer, cell: str, qset: str):
    lm, tok = target.get()
    with steer(lm):
        return answer_rows(lm, tok, items, spec, cell, qset)
