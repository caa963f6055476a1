"""The config schema is the one source of defaults: every spec dataclass agrees with it, field by field.

A dataclass default that differs from the schema's is a second, silent default: the workflow (schema-filled config)
and a library caller (dataclass defaults) would then run different experiments under the same name.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

import emgrid
from emgrid.config import load_schema

# Spec dataclass -> the schema object whose properties it mirrors (a JSON pointer into the schema).
SCHEMA_OF = {
    "FinetuneSpec": "$defs/finetune",
    "GenerateSpec": "$defs/generate",
    "JudgeSpec": "properties/judge",
    "ClientSpec": "properties/llm",
    "Criterion": "properties/analysis",
    "BootstrapSpec": "properties/analysis/properties/bootstrap",
    "ApiFinetuneSpec": "$defs/openai_finetune",
    "TargetSpec": "properties/analyses/properties/target",
    "MiaSpec": "properties/analyses/properties/mia",
    "DiversitySpec": "properties/analyses/properties/diversity",
    "SteeringSpec": "properties/analyses/properties/steering",
    "EfficacySpec": "properties/domains/additionalProperties/properties/efficacy",
}
# Library functions whose keyword defaults mirror a schema key: (module, function) -> {parameter: JSON pointer of the
# schema property}. A library caller who leaves the keyword out must get what the workflow gets.
MIN_MASS = "properties/analysis/properties/min_mass"
ALPHA = "properties/analysis/properties/alpha"
FUNCTION_DEFAULTS = {
    ("emgrid.finetune", "finetune"): {"checkpoint_every": "$defs/finetune/properties/checkpoint_every"},
    ("emgrid.finetune", "build_trainer"): {"checkpoint_every": "$defs/finetune/properties/checkpoint_every"},
    ("emgrid.judge.scoring", "expected_score"): {"min_mass": MIN_MASS},
    ("emgrid.judge.scoring", "categorize"): {"min_mass": MIN_MASS},
    ("emgrid.scores", "score_answers"): {"min_mass": MIN_MASS},
    ("emgrid.aggregate", "aggregate_files"): {"min_mass": MIN_MASS, "alpha": ALPHA},
    ("emgrid.findings.tables", "findings"): {"alpha": ALPHA},
    ("emgrid.efficacy.summary", "score_rows"): {"min_mass": MIN_MASS},
    ("emgrid.efficacy.summary", "summarize_files"): {"min_mass": MIN_MASS},
}
# The named library defaults those keywords use: (module, constant) -> JSON pointer of the schema property.
CONSTANT_DEFAULTS = {
    ("emgrid.judge.scoring", "DEFAULT_MIN_MASS"): MIN_MASS,
    ("emgrid.stats.adjust", "DEFAULT_ALPHA"): ALPHA,
}
# Modules that need heavy optional imports to load are still walked: emgrid imports torch lazily.


def _spec_classes() -> dict[str, type]:
    """Every dataclass in emgrid that is built from a config block: named *Spec, or listed in SCHEMA_OF."""
    found = {}
    for info in pkgutil.walk_packages(emgrid.__path__, "emgrid."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                dataclasses.is_dataclass(obj)
                and isinstance(obj, type)
                and obj.__module__ == module.__name__
                and (name.endswith("Spec") or name in SCHEMA_OF)
            ):
                found[name] = obj
    return found


def _node(schema: dict, pointer: str) -> dict:
    node = schema
    for part in pointer.split("/"):
        node = node[part]
    return node


def _plain(v):
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def test_every_spec_dataclass_has_a_schema_block():
    classes = _spec_classes()
    assert set(SCHEMA_OF) <= set(classes), f"listed but not found: {sorted(set(SCHEMA_OF) - set(classes))}"
    unmapped = sorted(set(classes) - set(SCHEMA_OF))
    assert not unmapped, f"spec dataclasses without a schema block in SCHEMA_OF: {unmapped}"


@pytest.mark.parametrize("name", sorted(SCHEMA_OF))
def test_dataclass_defaults_agree_with_schema(name):
    cls = _spec_classes()[name]
    props = _node(load_schema(), SCHEMA_OF[name]).get("properties", {})
    problems = []
    for f in dataclasses.fields(cls):
        default = _field_default(f)
        if default is dataclasses.MISSING:
            continue  # no default in the dataclass: the schema's is the only one
        if f.name not in props:
            problems.append(f"{f.name}: dataclass default {default!r}, but the schema has no such key")
        elif "default" not in props[f.name]:
            problems.append(f"{f.name}: dataclass default {default!r}, but the schema declares none")
        elif _plain(default) != _plain(props[f.name]["default"]):
            problems.append(f"{f.name}: dataclass default {default!r} != schema default {props[f.name]['default']!r}")
    assert not problems, f"{cls.__module__}.{name} vs schema {SCHEMA_OF[name]}:\n" + "\n".join(problems)


@pytest.mark.parametrize("where", sorted(FUNCTION_DEFAULTS), ids=lambda w: ".".join(w))
def test_library_function_defaults_agree_with_schema(where):
    import inspect

    module, name = where
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    schema = load_schema()
    for param, pointer in FUNCTION_DEFAULTS[where].items():
        assert params[param].default == _node(schema, pointer)["default"], f"{module}.{name}({param}=...) vs {pointer}"


@pytest.mark.parametrize("where", sorted(CONSTANT_DEFAULTS), ids=lambda w: ".".join(w))
def test_library_default_constants_agree_with_schema(where):
    module, name = where
    pointer = CONSTANT_DEFAULTS[where]
    assert getattr(importlib.import_module(module), name) == _node(load_schema(), pointer)["default"], pointer


def test_analysis_specs_fall_back_to_the_schema_defaults():
    """`analysis_specs` of an empty mapping (a library caller's) gives what the schema-filled config gives."""
    from emgrid.scores import analysis_specs

    schema = load_schema()
    _, min_mass, _, alpha = analysis_specs({})
    assert (min_mass, alpha) == (_node(schema, MIN_MASS)["default"], _node(schema, ALPHA)["default"])
