"""Sampling: a seeded train / held-out split of the misaligned examples (held-out rows feed membership
inference later), plus the shuffled aligned-only pool the backdoor variant may draw on."""

from __future__ import annotations

import random

from emgrid.data.example import Example
from emgrid.data.registry import Param, non_negative, positive

SAMPLE_SPEC = {
    "n": Param((int, type(None)), None, check=positive, doc="misaligned training examples; null = all left"),
    "heldout": Param((int,), 0, check=non_negative, doc="misaligned examples kept out of training"),
    "seed": Param((int, type(None)), None, doc="fixed sampling seed; null = the cell seed"),
}


def split(examples: list[Example], p: dict, seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, heldout, pool). Held-out rows are taken first so they do not move when `n` changes."""
    rng = random.Random(f"sample:{p['seed'] if p['seed'] is not None else seed}")
    mis = [e for e in examples if not e.pool]
    pool = [e for e in examples if e.pool]
    rng.shuffle(mis)
    rng.shuffle(pool)
    heldout = mis[: p["heldout"]]
    rest = mis[p["heldout"] :]
    train = rest if p["n"] is None else rest[: p["n"]]
    return train, heldout, pool


def needed(p: dict) -> int:
    return (p["n"] or 1) + p["heldout"]
