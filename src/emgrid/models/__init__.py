"""Model preparation and loading (being split into modules: build, cache, spec, manifest, load)."""

from emgrid.models.build import *  # noqa: F403
from emgrid.models.build import _DTYPES, _offline_if_local, _replacing_dir, _source_args  # noqa: F401
