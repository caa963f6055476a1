"""The grid a config describes: its cells (model x domain x variant x seed, plus each model's base), their ids and
the wildcard patterns that name them, and the config merges every stage shares.

A leaf of the import graph (only emgrid.errors below it): the stages, the findings and the report all name cells,
so what a cell is must not depend on any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
_CELL_PARSE = re.compile(rf"^(?P<domain>{DOMAIN_RE})-(?P<variant>plain|backdoor)-s(?P<seed>[0-9]+)$")


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


def all_model_specs(config: dict) -> dict:
    """Grid models and judge-only models share one namespace: both are prepared by the same rule."""
    return {**config.get("judge_models", {}), **config["models"]}


def judge_model_key(config: dict) -> str | None:
    """The model key the local (hf) judge runs on; None for API judges."""
    j = config["judge"]
    return j["model"] if j["backend"] == "hf" else None


def models_re(models: list[str]) -> str:
    """A wildcard constraint matching exactly these model keys (`(?!)` matches nothing when there are none)."""
    return "|".join(re.escape(m) for m in models) or "(?!)"


def analysis_domain_seeds(config: dict) -> list[tuple[str, int]]:
    return [(d, int(s)) for d in config["domains"] for s in config["seeds"]]


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
