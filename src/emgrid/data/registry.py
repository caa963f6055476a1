"""Named recipe steps and their parameter specs, so a recipe is validated (key paths, types, defaults)
before any job runs and a typo in a config never surfaces hours later inside a build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from emgrid.errors import ConfigError

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One step parameter: accepted types, default (REQUIRED if none), allowed values, extra check.

    `check(value, keypath)` returns the (possibly normalised) value or raises ConfigError."""

    types: tuple
    default: Any = REQUIRED
    choices: tuple | None = None
    check: Callable[[Any, str], Any] | None = None
    doc: str = ""


@dataclass(frozen=True)
class Step:
    stage: str
    kind: str
    fn: Callable
    params: dict[str, Param]
    doc: str


REGISTRY: dict[str, dict[str, Step]] = {"source": {}, "transform": {}}


def register(stage: str, kind: str, **params: Param):
    """Decorator: make `fn` available to recipes as `{kind: <kind>, ...params}` in `stage`."""

    def deco(fn):
        REGISTRY[stage][kind] = Step(stage, kind, fn, params, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def _type_ok(value, types: tuple) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _type_names(types: tuple) -> str:
    names = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


def resolve_params(spec: dict[str, Param], given: dict, keypath: str, skip: tuple = ()) -> dict:
    """Check `given` against `spec` and return it with defaults filled in; errors name `keypath.key`."""
    if not isinstance(given, dict):
        raise ConfigError(f"{keypath}: expected a mapping, got {type(given).__name__}")
    out = {}
    for k in given:
        if k not in spec and k not in skip:
            allowed = ", ".join(sorted(spec)) or "(none)"
            raise ConfigError(f"{keypath}.{k}: unknown key; allowed keys: {allowed}")
    for name, p in spec.items():
        kp = f"{keypath}.{name}"
        if name not in given:
            if p.default is REQUIRED:
                raise ConfigError(f"{kp}: required key is missing" + (f" ({p.doc})" if p.doc else ""))
            out[name] = p.default
            continue
        v = given[name]
        if not _type_ok(v, p.types):
            raise ConfigError(f"{kp}: expected {_type_names(p.types)}, got {type(v).__name__} {v!r}")
        if p.choices is not None and v not in p.choices:
            raise ConfigError(f"{kp}: {v!r} is not one of {', '.join(map(repr, p.choices))}")
        if p.check is not None and v is not None:
            v = p.check(v, kp)
        out[name] = v
    return out


def resolve_step(stage: str, cfg, keypath: str) -> dict:
    """Validate one `{kind: ..., ...}` step mapping of `stage`; returns it resolved (kind first)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{keypath}: expected a mapping with a `kind` key, got {type(cfg).__name__}")
    kinds = REGISTRY[stage]
    if "kind" not in cfg:
        raise ConfigError(f"{keypath}.kind: required key is missing; one of {', '.join(sorted(kinds))}")
    kind = cfg["kind"]
    if kind not in kinds:
        raise ConfigError(f"{keypath}.kind: unknown {stage} {kind!r}; known: {', '.join(sorted(kinds))}")
    params = resolve_params(kinds[kind].params, {k: v for k, v in cfg.items() if k != "kind"}, keypath)
    return {"kind": kind, **params}


# Reusable checks -------------------------------------------------------------------------------------------


def positive(v, kp):
    if v <= 0:
        raise ConfigError(f"{kp}: must be > 0, got {v}")
    return v


def non_negative(v, kp):
    if v < 0:
        raise ConfigError(f"{kp}: must be >= 0, got {v}")
    return v


def unit_interval(v, kp):
    if not 0 < v <= 1:
        raise ConfigError(f"{kp}: must be in (0, 1], got {v}")
    return v


def non_empty_str(v, kp):
    if not v.strip():
        raise ConfigError(f"{kp}: must be a non-empty string")
    return v


def str_list(v, kp):
    if not v or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(f"{kp}: must be a non-empty list of non-empty strings")
    return list(v)
