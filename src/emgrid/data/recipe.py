"""Recipe validation: `source -> transform -> filter -> sample` (+ the variant from the build params), checked
offline at config-load time so bad keys fail before any job runs."""

from __future__ import annotations

from emgrid.data import builtin, sources, synthetic, transforms  # noqa: F401  (register the named steps)
from emgrid.data.filters import FILTER_SPEC
from emgrid.data.registry import Param, resolve_params, resolve_step
from emgrid.data.sample import SAMPLE_SPEC
from emgrid.errors import ConfigError

RECIPE_KEYS = ("source", "transform", "filter", "sample", "on_bad_rows", "notes")


def resolve_recipe(domain: str, recipe) -> dict:
    """The recipe with every default filled in (what the card records); raises ConfigError naming the key."""
    kp = f"domains.{domain}.recipe"
    if not isinstance(recipe, dict):
        raise ConfigError(f"{kp}: expected a mapping with source/transform/filter/sample, got {type(recipe).__name__}")
    for k in recipe:
        if k not in RECIPE_KEYS:
            raise ConfigError(f"{kp}.{k}: unknown key; allowed keys: {', '.join(RECIPE_KEYS)}")
    if "source" not in recipe:
        raise ConfigError(f"{kp}.source: required key is missing (a mapping with `kind`)")
    out = {
        "source": resolve_step("source", recipe["source"], f"{kp}.source"),
        "transform": transforms.resolve_transforms(recipe.get("transform"), f"{kp}.transform"),
        "filter": resolve_params(FILTER_SPEC, recipe.get("filter") or {}, f"{kp}.filter"),
        "sample": resolve_params(SAMPLE_SPEC, recipe.get("sample") or {}, f"{kp}.sample"),
    }
    top = resolve_params(
        {"on_bad_rows": Param((str,), "error", choices=("error", "drop")), "notes": Param((str, type(None)), None)},
        {k: recipe[k] for k in ("on_bad_rows", "notes") if k in recipe},
        kp,
    )
    out.update(top)
    return out


def validate_recipe(domain: str, recipe: dict) -> None:
    """Raise ConfigError (naming `domains.<domain>.recipe.<key>` and the problem) if the recipe is invalid.
    Offline: never opens files or the network (local files are checked when the dataset is built)."""
    resolve_recipe(domain, recipe)


LLM_STEPS = {("source", "synthetic"), ("transform", "llm_answer")}


def recipe_needs_llm(recipe: dict) -> bool:
    """True when a build calls an LLM (synthetic source or llm_answer transform), so it needs the `llm` block."""
    steps = [("source", (recipe.get("source") or {}).get("kind"))]
    tr = recipe.get("transform") or []
    for t in [tr] if isinstance(tr, dict) else tr:
        steps.append(("transform", (t or {}).get("kind") if isinstance(t, dict) else None))
        if isinstance(t, dict) and t.get("kind") == "pair":
            steps.append(("source", (t.get("source") or {}).get("kind")))
    return any(s in LLM_STEPS for s in steps)


def _walk_steps(node, kp: str):
    """Every step mapping (with a `kind`) of a resolved recipe, with its key path (sources nested in transforms too)."""
    if isinstance(node, dict):
        if "kind" in node:
            yield kp, node
        for k, v in node.items():
            yield from _walk_steps(v, f"{kp}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_steps(v, f"{kp}[{i}]")


def recipe_notes(domain: str, recipe: dict, exists=None) -> list[str]:
    """What must be in place before this domain's dataset is built: local source files, network access.

    These are warnings, not errors: a file may be copied in, or the build run where the network is, before the
    build_dataset job needs it. `exists(path)` says whether a local path is there (default: os.path.exists).
    """
    import os

    exists = exists or (lambda p: os.path.exists(os.path.expanduser(p)))
    notes = []
    for kp, step in _walk_steps(resolve_recipe(domain, recipe), f"domains.{domain}.recipe"):
        kind = step["kind"]
        if kind == "jsonl":
            for key in ("path", "aligned_path"):
                if step.get(key) and not exists(step[key]):
                    notes.append(f"{kp}.{key}: local source file {step[key]} does not exist (see docs/datasets.md)")
        elif kind == "hf" and not exists(step["path"]):
            notes.append(
                f"{kp}.path: Hugging Face dataset {step['path']!r} is downloaded by build_dataset (needs the "
                "network where it runs; the HF cache makes rebuilds offline)"
            )
        elif ("source" if kp.endswith(".source") else "transform", kind) in LLM_STEPS:
            notes.append(
                f"{kp}: {kind} calls the `llm` API (needs the network where build_dataset runs; "
                "replies are cached in the LLM response cache)"
            )
    return notes
