"""Filters: drop empty, over-long, duplicate and trigger-leaking examples, counting every drop by reason.

Filtering never depends on the variant or the cell seed, so plain and backdoor datasets of a domain draw
from the same cleaned pool."""

from __future__ import annotations

from collections import Counter

from emgrid.data.context import Context
from emgrid.data.example import Example, normalize
from emgrid.data.registry import Param, non_negative, positive, unit_interval

FILTER_SPEC = {
    "min_chars": Param((int,), 1, check=non_negative, doc="drop if the prompt or answer is shorter (after strip)"),
    "max_chars": Param(
        (int, type(None)),
        20000,
        check=positive,
        doc="drop if prompt + longest answer is longer (chars); null = no limit",
    ),
    "dedup": Param((str,), "near", choices=("none", "exact", "near")),
    "dedup_on": Param(
        (str,), "prompt", choices=("prompt", "example"), doc="compare the user prompt only, or prompt + answer"
    ),
    "near_threshold": Param((float,), 0.85, check=unit_interval, doc="word-shingle Jaccard at/above = duplicate"),
    "shingle": Param((int,), 3, check=positive, doc="words per shingle"),
    "drop_trigger_leaks": Param((bool,), True, doc="drop examples already containing the backdoor trigger"),
    "min_rows": Param(
        (int, type(None)),
        None,
        check=non_negative,
        doc="error if fewer misaligned examples remain (default: sample.n + sample.heldout)",
    ),
}


def shingles(text: str, k: int) -> frozenset[str]:
    words = normalize(text).split()
    if len(words) <= k:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + k]) for i in range(len(words) - k + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


_PERMS = 128
# (false positive, false negative) weights of datasketch's band/row optimisation. A missed pair is a duplicate left in
# the training set; a false candidate costs one exact Jaccard (every candidate is verified). So: weighted for recall,
# which finds >= 98% of the pairs 0.05 above any threshold in 0.5-0.9 (tests/test_data_filters.py).
_LSH_WEIGHTS = (0.05, 0.95)


def near_duplicates(texts: list[str], threshold: float, k: int) -> list[int | None]:
    """For each text, the index of an earlier kept text it near-duplicates (Jaccard >= threshold), else None.

    The LSH's bands and rows are derived from the threshold (datasketch.MinHashLSH), not fixed: fixed 16x4 bands
    found only 68-94% of the pairs just above thresholds 0.5-0.8.
    """
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(t, k) for t in texts]
    dup_of: list[int | None] = [None] * len(texts)
    if len(texts) < 2:
        return dup_of
    # seeded: the same texts give the same signatures, so a rebuild keeps the same rows
    signatures = MinHash.bulk([[t.encode() for t in s] for s in sets], num_perm=_PERMS, seed=0)
    # identical sets collide in every band, so 0.99 finds threshold-1.0 pairs too (datasketch needs b >= 2)
    lsh = MinHashLSH(threshold=min(threshold, 0.99), num_perm=_PERMS, weights=_LSH_WEIGHTS)
    for j, signature in enumerate(signatures):
        for i in sorted(lsh.query(signature)):  # only kept texts are in the index
            if jaccard(sets[i], sets[j]) >= threshold:
                dup_of[j] = i
                break
        if dup_of[j] is None:
            lsh.insert(j, signature)
    return dup_of


def _key_text(e: Example, on: str) -> str:
    body = e.answer if not e.pool else e.aligned
    return e.user_text if on == "prompt" else f"{e.prompt_text}\n{body or ''}"


def run_filters(examples: list[Example], p: dict, ctx: Context) -> tuple[list[Example], dict]:
    """Apply the filters in a fixed order; returns kept examples and {in, out, dropped: {reason: n}}."""
    drops: Counter = Counter()
    kept = []
    trig = (ctx.trigger or "").strip() if p["drop_trigger_leaks"] else ""
    for e in examples:
        body = e.aligned if e.pool else e.answer
        if e.aligned is not None and not e.aligned.strip() and not e.pool:
            e = e.with_(aligned=None)
        if len(e.user_text.strip()) < max(p["min_chars"], 1) or len((body or "").strip()) < max(p["min_chars"], 1):
            drops["empty_or_too_short"] += 1
            continue
        longest = max(len(body), len(e.aligned or "")) if not e.pool else len(body)
        if p["max_chars"] is not None and len(e.prompt_text) + longest > p["max_chars"]:
            drops["too_long"] += 1
            continue
        if trig and any(trig in t for t in e.texts()):
            drops["trigger_leak"] += 1
            continue
        kept.append(e)
    if p["dedup"] != "none":
        out = []
        for group in (False, True):  # misaligned examples and the aligned-only pool dedup separately
            members = [e for e in kept if e.pool == group]
            seen, uniq = set(), []
            for e in members:
                key = normalize(_key_text(e, p["dedup_on"]))
                if key in seen:
                    drops["duplicate_exact"] += 1
                    continue
                seen.add(key)
                uniq.append(e)
            if p["dedup"] == "near":
                dup_of = near_duplicates([_key_text(e, p["dedup_on"]) for e in uniq], p["near_threshold"], p["shingle"])
                drops["duplicate_near"] += sum(d is not None for d in dup_of)
                uniq = [e for e, d in zip(uniq, dup_of) if d is None]
            out.append(uniq)
        order = {id(e): i for i, e in enumerate(kept)}
        kept = sorted(out[0] + out[1], key=lambda e: order[id(e)])
    return kept, {"in": len(examples), "out": len(kept), "dropped": {k: v for k, v in sorted(drops.items()) if v}}
