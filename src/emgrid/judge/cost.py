"""Dollar cost of judge requests from token usage and the spec's price table (USD per 1M tokens)."""

from __future__ import annotations

from emgrid.judge.spec import JudgeSpec


def cost_usd(usage: dict | None, spec: JudgeSpec, batch: bool = False) -> float:
    """0.0 for local judges and for models missing from the price table (the usage is still recorded)."""
    if not usage or spec.backend == "hf":
        return 0.0
    price = spec.price(batch)
    if price is None:
        return 0.0
    pin, pout = price
    return (usage.get("prompt_tokens", 0) * pin + usage.get("completion_tokens", 0) * pout) / 1e6


def total_cost(judged_rows: list[dict]) -> dict:
    """Totals of a judged file: requests' tokens and dollars (cached rows count what they cost when first made)."""
    return {
        "rows": len(judged_rows),
        "prompt_tokens": sum(r["usage"]["prompt_tokens"] for r in judged_rows),
        "completion_tokens": sum(r["usage"]["completion_tokens"] for r in judged_rows),
        "cost_usd": sum(r["cost_usd"] for r in judged_rows),
    }
