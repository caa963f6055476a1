"""Config validation: fill schema defaults and fail before any job starts, naming the key and the problem."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from emgrid.errors import ConfigError
from emgrid.yamlio import load_yaml

# workflow/schemas/config.schema.yaml, shipped inside the package (a link in the repository) so that an installed
# emgrid finds it too.
SCHEMA_PATH = Path(__file__).resolve().parent / "workflow_files" / "config.schema.yaml"


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _with_defaults(validator_class):
    """A validator that fills `default` values in place, descending into defaults it just filled."""
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _messages(errors, prefix: str = "") -> list[tuple[str, str]]:
    errors = sorted(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    out = []
    for e in errors:
        where = _key_path([*([prefix] if prefix else []), *e.absolute_path])
        out.append((where, f"config key {where}: {e.message}"))
    return out


def schema_problems(config: dict, schema: dict | None = None) -> list[tuple[str, str]]:
    """Fill defaults into `config` in place and return every schema violation as (key path, message)."""
    schema = schema or load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    problems = _messages(validator.iter_errors(config))
    # Overrides are partial finetune/generate blocks: check their keys and types against the full definitions.
    plain = jsonschema.Draft202012Validator
    for section in ("finetune", "openai_finetune", "generate"):
        definition = schema["$defs"][section]
        for owner in ("models", "domains", "question_sets"):
            items = config.get(owner)
            for key, item in items.items() if isinstance(items, dict) else []:
                if isinstance(item, dict) and isinstance(item.get(section), dict):
                    problems += _messages(
                        plain({**definition, "$defs": schema["$defs"]}).iter_errors(item[section]),
                        prefix=f"{owner}.{key}.{section}",
                    )
    efficacy = config.get("efficacy")
    generate = efficacy.get("generate") if isinstance(efficacy, dict) else None
    if isinstance(generate, dict):
        problems += _messages(
            plain({**schema["$defs"]["generate"], "$defs": schema["$defs"]}).iter_errors(generate),
            prefix="efficacy.generate",
        )
    return problems


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate `config` in place (defaults filled) and return it; raise ConfigError listing every bad key."""
    problems = schema_problems(config, schema)
    if problems:
        raise ConfigError("\n".join(msg for _, msg in problems))
    return config


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and validate it (used by tests and `emgrid plan`)."""
    path = Path(path)
    try:
        config = load_yaml(path)  # a key repeated in one mapping is an error naming file and line
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate_config(config)
