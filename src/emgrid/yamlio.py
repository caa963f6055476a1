"""Reading the config and question YAML files strictly: a key repeated in one mapping is an error naming the file and
both lines.

PyYAML (and so Snakemake's `--configfile`) keeps the last of two equal keys without a word: a second `wrong_facts:`
under `domains` silently replaces the first domain, and a repeated `paraphrases:` silently drops the first list.
Both are almost always a copy-paste slip, and the grid that runs is then not the one the file shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from emgrid.errors import ConfigError

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ConfigError):
    """A mapping of a YAML file holds the same key twice."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (`<<` merges may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # an unhashable key fails in SafeLoader itself, with its own message
                line = key_node.start_mark.line + 1
                if key in first:
                    raise DuplicateKeyError(
                        f"{key_node.start_mark.name}:{line}: key {key!r} is repeated in the same mapping (first at "
                        f"line {first[key]}); YAML would silently keep only the second, so remove or rename one"
                    )
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str, name: str) -> Any:
    """Parse `text` (read from the file `name`) with the strict loader."""
    loader = _StrictLoader(text)
    loader.name = name  # marks (and so error messages) name the file instead of "<unicode string>"
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file strictly (see the module docstring); yaml.YAMLError for malformed YAML as usual."""
    return load_yaml_text(Path(path).read_text(encoding="utf-8"), str(path))


def config_file_problems(paths) -> list[str]:
    """The config files Snakemake loaded (`--configfile`, the Snakefile's `configfile:`), re-read strictly: a
    repeated key there was silently resolved by Snakemake's own loader, so it is reported here before any job."""
    problems = []
    for path in paths:
        if not Path(path).is_file():
            continue
        try:
            load_yaml(path)
        except DuplicateKeyError as e:
            problems.append(str(e))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # Snakemake parsed it (a JSON file, say); a syntax error is its own to report
    return problems
