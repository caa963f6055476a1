"""Steered generation: a target cell's model answers a question set while a source cell's direction is added to
(or projected out of) one layer's residual stream, through the ordinary generation code (`emgrid.generation`).

A steering run is named by a *steer id*, a path component of its outputs:

- `unsteered`: the target as it is (scale 0, the baseline of every run on that target);
- `{source}.L{layer}.add{scale}`: add `scale * v_hat * typical_norm[layer]` (v_hat: the source's unit direction;
  typical_norm: the source model's mean residual norm over answer tokens at that layer);
- `{source}.L{layer}.random{scale}`: the same with a seeded random unit direction (the same added norm);
- `{source}.L{layer}.ablate`: project v_hat out of the layer's output.
"""

from __future__ import annotations

import re
import zlib
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from emgrid.errors import ConfigError, DataError
from emgrid.grid import FINETUNED_CELL_RE
from emgrid.steering.hooks import ablate_direction, add_vector

UNSTEERED = "unsteered"
KINDS = ("add", "random", "ablate")
_NUM = r"-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?"
STEER_RE = rf"{UNSTEERED}|(?:{FINETUNED_CELL_RE})\.L[0-9]+\.(?:(?:add|random){_NUM}|ablate)"
_PARSE = re.compile(
    rf"^(?P<source>{FINETUNED_CELL_RE})\.L(?P<layer>[0-9]+)\.(?P<kind>add|random|ablate)(?P<scale>{_NUM})?$"
)


@dataclass(frozen=True)
class SteerJob:
    """One steering run on a target: kind `unsteered` (no source) or add/random/ablate of `source` at `layer`."""

    kind: str
    source: str | None = None
    layer: int | None = None
    scale: float = 0.0

    @property
    def id(self) -> str:
        if self.kind == UNSTEERED:
            return UNSTEERED
        scale = "" if self.kind == "ablate" else format_scale(self.scale)
        return f"{self.source}.L{self.layer}.{self.kind}{scale}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "layer": self.layer, "scale": self.scale}


def format_scale(scale: float) -> str:
    """The shortest text that reads back as the same float (0.5, 2, -1.5): stable path components."""
    return repr(float(scale)).removesuffix(".0")


def parse_steer(steer: str) -> SteerJob:
    if steer == UNSTEERED:
        return SteerJob(UNSTEERED)
    m = _PARSE.match(steer)
    if not m or (m["kind"] == "ablate") != (m["scale"] is None):
        raise ConfigError(
            f"not a steer id: {steer!r} (expected {UNSTEERED} or <cell>.L<layer>.add|random<scale>|ablate)"
        )
    return SteerJob(m["kind"], m["source"], int(m["layer"]), float(m["scale"] or 0.0))


def random_direction(direction: np.ndarray, seed: int, key: str) -> np.ndarray:
    """A Gaussian random vector with `direction`'s norm, fixed by `seed` and `key` (e.g. the steer id), so the
    control of every run is reproducible and different runs get different directions."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    v = rng.standard_normal(direction.shape[-1])
    return v * (np.linalg.norm(direction) / np.linalg.norm(v))


def steering_vector(job: SteerJob, direction, seed: int) -> np.ndarray:
    """The vector an add/random run adds at `job.layer`: scale * unit direction * the layer's typical norm."""
    v = direction.directions[direction.layer_index(job.layer)]
    if job.kind == "random":
        v = random_direction(v, seed, job.id)
    return job.scale * (v / np.linalg.norm(v)) * float(direction.typical_norm[job.layer])


def hook_array(job: SteerJob, direction, seed: int) -> np.ndarray | None:
    """What a run's hook applies at `job.layer`: the added vector (add, random), the unit direction it projects
    out (ablate), or None (unsteered). Also what the answer cache hashes (emgrid.steering.runs)."""
    if job.kind == UNSTEERED:
        return None
    if job.kind == "ablate":
        return direction.unit(job.layer)
    return steering_vector(job, direction, seed)


def steer_context(job: SteerJob, direction, seed: int):
    """`steer(model)`: the context manager that holds this run's hook on `model` (none when unsteered)."""
    import torch

    array = hook_array(job, direction, seed)
    if array is None:
        return lambda model: nullcontext()
    tensor = torch.tensor(array)
    if job.kind == "ablate":
        return lambda model: ablate_direction(model, job.layer, tensor)
    return lambda model: add_vector(model, job.layer, tensor)


def run_rows(steer: str):
    """A predicate keeping one run's rows of a target's answers file (rows say their run in `steer`)."""
    job = parse_steer(steer).as_dict()
    return lambda row: row.get("steer") == job


def check_skipped(direction_meta: dict | None, rows: list[dict], where: str) -> bool:
    """Whether a steered run was skipped because its source has no direction (its target's answers file then has
    no rows of it); answers for such a source, or none for one with a direction, mean the file is stale: an error
    naming it."""
    skipped = direction_meta is not None and direction_meta.get("status") != "ok"
    if skipped and rows:
        raise DataError(f"{where}: answers of a source without a direction ({direction_meta.get('reason')}); delete it")
    if not skipped and not rows:
        raise DataError(f"{where}: no answers, but the run was planned; delete it and rerun")
    return skipped
