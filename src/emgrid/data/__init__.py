"""Dataset stage: one declarative recipe per domain, `source -> transform -> filter -> sample -> variant`, each step
a small named function with its parameters in the config (see docs/datasets.md).

Public API: `validate_recipe(domain, recipe)` (offline, at config load) and `build_dataset(params, out_dir)`.
"""

from emgrid.data.build import build_dataset
from emgrid.data.recipe import recipe_needs_llm, resolve_recipe, validate_recipe

__all__ = ["build_dataset", "validate_recipe", "resolve_recipe", "recipe_needs_llm"]
