"""Hierarchical bootstrap: resample seeds, then questions, then answers within each (seed, question) cluster.

Answers are not independent: the answers to one question share its difficulty, and the answers of one trained model
(one seed) share that model's quirks. An interval that treats answers as independent (Wilson) is then too narrow.
Resampling every level of the hierarchy reproduces each level's variance.

Questions are drawn once per resample and the same draw is used for every seed, because every seed answers the same
questions: a question effect shared by all seeds (crossed design) is then counted once per question, as it should
be; for effects that differ by seed (nested design) the shared draw gives the same variance as independent draws.
All resamples are drawn at once as index arrays (no Python loop per resample), so a paper-sized grid takes seconds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from emgrid.errors import ConfigError, reject_unknown_keys


@dataclass(frozen=True)
class BootstrapSpec:
    """`analysis.bootstrap`: resamples per interval, the bootstrap's RNG seed, sign-flips per permutation test,
    and the interval level."""

    resamples: int = 1000
    seed: int = 0
    permutations: int = 2000
    level: float = 0.95

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "analysis.bootstrap") -> "BootstrapSpec":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
        reject_unknown_keys(d, cls, where)
        spec = cls(**d)
        for k in ("resamples", "permutations"):
            v = getattr(spec, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}.{k}: expected a positive integer, got {v!r}")
        if not 0 < spec.level < 1:
            raise ConfigError(f"{where}.level: expected a number in (0, 1), got {spec.level!r}")
        return spec

    def rng(self, *key: Any) -> np.random.Generator:
        """A generator for one group, fixed by the spec's seed and the group's key (not by the order of groups)."""
        return np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])


@dataclass(frozen=True)
class ClusterLayout:
    """Answers coded by cluster: `seed` in 0..n_seeds-1 and `question` in 0..n_questions-1, one entry per answer."""

    seed: np.ndarray
    question: np.ndarray
    n_seeds: int
    n_questions: int
    question_labels: tuple[str, ...] = ()  # code i's label, for draws shared with other groups (QuestionDraws)

    @property
    def cluster(self) -> np.ndarray:
        return self.seed * self.n_questions + self.question

    @property
    def n_clusters(self) -> int:
        return self.n_seeds * self.n_questions


def layout(seeds: Sequence[Any], questions: Sequence[Any]) -> ClusterLayout:
    """Code seed and question labels (any hashable values; compared as strings so NA seeds work) as integers."""
    s_codes, s_uni = _codes(seeds)
    q_codes, q_uni = _codes(questions)
    return ClusterLayout(s_codes, q_codes, len(s_uni), len(q_uni), tuple(q_uni))


def _codes(labels: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    uni, inv = np.unique(np.asarray([str(x) for x in labels], dtype=object).astype(str), return_inverse=True)
    return inv.astype(np.int64), [str(u) for u in uni]


@dataclass(frozen=True)
class QuestionDraws:
    """How often each question was drawn in each resample, shared by every group that answers these questions.

    All domains of a model x question set answer the same questions, so a question that is hard for every domain
    (or that the trigger moves for every domain) is one draw for all of them: ranks, differences between domains and
    the mean over domains then come from joint draws, and a question effect shared by the domains is neither
    averaged away nor counted as independent noise per domain."""

    labels: tuple[str, ...]
    counts: np.ndarray  # (resamples, len(labels))

    def for_layout(self, lay: ClusterLayout) -> np.ndarray:
        """(resamples, lay.n_questions): these draws in the layout's question order."""
        index = {label: i for i, label in enumerate(self.labels)}
        missing = [q for q in lay.question_labels if q not in index]
        if missing or len(lay.question_labels) != lay.n_questions:
            raise ValueError(f"questions {missing[:3]} are not among the shared draws' questions")
        return self.counts[:, [index[q] for q in lay.question_labels]]


def question_draws(rng: np.random.Generator, questions: Sequence[Any], resamples: int) -> QuestionDraws:
    """One multinomial draw of the distinct `questions` per resample, to share between groups (QuestionDraws)."""
    _, labels = _codes(questions)
    return QuestionDraws(tuple(labels), _draw_counts(rng, len(labels), resamples))


def cluster_weights(
    rng: np.random.Generator, lay: ClusterLayout, resamples: int, questions: QuestionDraws | None = None
) -> np.ndarray:
    """(resamples, n_clusters) weights: how often each seed was drawn times how often each question was drawn (the
    shared `questions` draws when given, else this group's own)."""
    ws = _draw_counts(rng, lay.n_seeds, resamples)
    if questions is None:
        wq = _draw_counts(rng, lay.n_questions, resamples)
    else:
        wq = questions.for_layout(lay)
        if wq.shape[0] != resamples:
            raise ValueError(f"shared question draws hold {wq.shape[0]} resamples, not {resamples}")
    return (ws[:, :, None] * wq[:, None, :]).reshape(resamples, lay.n_clusters)


def _draw_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """Multinomial(n, uniform) counts per resample, drawn as n uniform indices per resample and counted."""
    idx = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(idx.ravel(), minlength=n * resamples).reshape(resamples, n).astype(float)


def cluster_sums(
    rng: np.random.Generator | None, values: np.ndarray, cluster: np.ndarray, n_clusters: int, resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster and column: sum of the non-NaN values and their count, after resampling answers within each
    cluster (the same picks for every column).

    `values` is (answers,) or (answers, columns); the result is two (rows, n_clusters[, columns]) arrays, with one
    row (the observed sums) when `rng` is None and `resamples` rows otherwise. Answers are sorted by cluster once,
    so every resample is one gather and one `np.add.reduceat` over contiguous clusters.
    """
    vals = np.asarray(values, dtype=float)
    v2 = vals.reshape(len(vals), -1)
    order = np.argsort(cluster, kind="stable")
    c = cluster[order]
    ok = ~np.isnan(v2[order])
    both = np.concatenate([np.where(ok, v2[order], 0.0), ok.astype(float)], axis=1)
    size = np.bincount(c, minlength=n_clusters)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    present = np.flatnonzero(size)
    if rng is None:
        gathered = both[None, :, :]
    else:
        picks = start[c] + np.floor(rng.random((resamples, len(c))) * size[c]).astype(np.int64)
        gathered = both[picks]
    rows, k = gathered.shape[0], v2.shape[1]
    out = np.zeros((rows, n_clusters, 2 * k))
    if len(present):
        out[:, present, :] = np.add.reduceat(gathered, start[present], axis=1)
    sums, counts = out[..., :k], out[..., k:]
    if vals.ndim == 1:
        return sums[..., 0], counts[..., 0]
    return sums, counts


def hierarchical_bootstrap(
    values: Sequence[float] | np.ndarray,
    lay: ClusterLayout,
    resamples: int,
    rng: np.random.Generator,
    parts: np.ndarray | None = None,
    questions: QuestionDraws | None = None,
) -> tuple[Any, np.ndarray]:
    """Pooled mean of `values` (NaN = not scored, left out) and its `resamples` bootstrap draws.

    For a rate pass 0/1 values. `values` may be (answers, columns): every column is resampled with the same draws
    (points (columns,), draws (resamples, columns)). `parts` (one integer per answer, constant within each
    question, e.g. the probe domain) adds a last axis: the pooled mean within each part, all parts from the same
    draws, so differences between parts get joint draws. A draw with no scored answer is NaN.
    """
    vals = np.asarray(values, dtype=float)
    if len(vals) != len(lay.seed):
        raise ValueError(f"{len(vals)} values but {len(lay.seed)} answers in the layout")
    v2 = vals.reshape(len(vals), -1)
    part_of = np.zeros(len(vals), dtype=np.int64) if parts is None else np.asarray(parts, dtype=np.int64)
    onehot = np.zeros((lay.n_clusters, int(part_of.max(initial=0)) + 1))
    onehot[lay.cluster, part_of] = 1.0
    if np.any(onehot.sum(1) > 1):
        raise ValueError("parts must be constant within each (seed, question) cluster")
    s0, n0 = cluster_sums(None, v2, lay.cluster, lay.n_clusters, 1)
    w = cluster_weights(rng, lay, resamples, questions)
    sums, counts = cluster_sums(rng, v2, lay.cluster, lay.n_clusters, resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = (s0[0].T @ onehot) / (n0[0].T @ onehot)
        draws = np.einsum("bck,cp->bkp", w[:, :, None] * sums, onehot) / np.einsum(
            "bck,cp->bkp", w[:, :, None] * counts, onehot
        )
    if parts is None:
        point, draws = point[:, 0], draws[:, :, 0]
    if vals.ndim == 1:
        return (float(point[0]) if parts is None else point[0]), draws[:, 0]
    return point, draws


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite draws; (nan, nan) when there are none."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return (np.nan, np.nan)
    a = (1 - level) / 2
    lo, hi = np.quantile(d, [a, 1 - a])
    return (float(lo), float(hi))


def rank_intervals(draws: np.ndarray, level: float = 0.95, descending: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Interval of each item's rank (1 = highest when `descending`) from (resamples, items) bootstrap draws.

    Within every resample tied items share their rank range (three items at the same value hold ranks 1-3 each, NaN
    last and tied with each other): the interval runs from the lower percentile of each item's best possible rank to
    the upper percentile of its worst. Breaking ties by item order instead would rank domains that all sit at 0 %
    alphabetically, as if the data told them apart. Returns two integer arrays.
    """
    d = np.asarray(draws, dtype=float)
    key = np.where(np.isnan(d), np.inf, -d if descending else d)
    better = key[:, None, :] < key[:, :, None]  # [b, i, j]: item j strictly ahead of item i in resample b
    tied_or_better = key[:, None, :] <= key[:, :, None]
    best = 1 + better.sum(axis=2)
    worst = tied_or_better.sum(axis=2)
    a = (1 - level) / 2
    lo = np.floor(np.quantile(best, a, axis=0, method="lower"))
    hi = np.ceil(np.quantile(worst, 1 - a, axis=0, method="higher"))
    return lo.astype(int), hi.astype(int)
