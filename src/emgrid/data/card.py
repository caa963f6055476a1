"""The dataset card: everything needed to know what a dataset is and how it was made, next to the data."""

from __future__ import annotations

import statistics


def length_stats(values: list[int]) -> dict:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {
        "n": len(s),
        "min": s[0],
        "mean": round(statistics.fmean(s), 1),
        "median": statistics.median(s),
        "p95": s[min(len(s) - 1, int(0.95 * len(s)))],
        "max": s[-1],
    }


def row_lengths(rows: list[dict]) -> dict:
    """Character lengths of prompts (all non-assistant-final turns) and answers, by aligned / misaligned."""
    out = {}
    for label, want in (("misaligned", False), ("aligned", True)):
        sel = [r for r in rows if r["meta"]["aligned"] == want]
        if sel:
            out[label] = {
                "prompt_chars": length_stats([sum(len(m["content"]) for m in r["messages"][:-1]) for r in sel]),
                "answer_chars": length_stats([len(r["messages"][-1]["content"]) for r in sel]),
            }
    return out
