"""The one price table: USD per 1M tokens for every API model emgrid calls (judge, generation, finetuning).

Built-in list prices are dated; an entry of a config's `judge.prices` replaces the built-in row of its model. A finetuned
model (`ft:<base>:<org>:<suffix>:<id>`) is priced by its base model's `ft_input`/`ft_output`, and training by the
base model's `training` price per 1M trained tokens (epochs x training-file tokens).
"""

from __future__ import annotations

from emgrid.errors import ConfigError

PRICES_AS_OF = "2025-06-01"  # OpenAI list prices on this date (https://openai.com/api/pricing); check before a run

_GPT4O_MINI = {
    "input": 0.15,
    "output": 0.60,
    "batch_input": 0.075,
    "batch_output": 0.30,
    "training": 3.00,
    "ft_input": 0.30,
    "ft_output": 1.20,
    "ft_batch_input": 0.15,
    "ft_batch_output": 0.60,
}
_GPT4O = {
    "input": 2.50,
    "output": 10.00,
    "batch_input": 1.25,
    "batch_output": 5.00,
    "training": 25.00,
    "ft_input": 3.75,
    "ft_output": 15.00,
    "ft_batch_input": 1.875,
    "ft_batch_output": 7.50,
}
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o-2024-08-06": _GPT4O,
    "gpt-4o": _GPT4O,
    "gpt-4o-mini-2024-07-18": _GPT4O_MINI,
    "gpt-4o-mini": _GPT4O_MINI,
    "gpt-4.1-mini": {
        "input": 0.40,
        "output": 1.60,
        "batch_input": 0.20,
        "batch_output": 0.80,
        "training": 5.00,
        "ft_input": 0.80,
        "ft_output": 3.20,
    },
}

# Config spellings of each price: the schema's short form and the explicit *_per_mtok form.
PRICE_KEYS = (
    "input",
    "output",
    "batch_input",
    "batch_output",
    "training",
    "ft_input",
    "ft_output",
    "ft_batch_input",
    "ft_batch_output",
)


def _normalize(entry: dict, where: str) -> dict[str, float]:
    out = {}
    for name in PRICE_KEYS:
        for k in (name, f"{name}_per_mtok"):
            if k in entry:
                out[name] = float(entry[k])
                break
    if not {"input", "output"} <= set(out) and set(out) - {"training"}:
        raise ConfigError(f"{where}: needs 'input' and 'output' (USD per million tokens), got {sorted(entry)}")
    return out


def finetune_base(model: str) -> str | None:
    """`gpt-4o-mini-2024-07-18` for `ft:gpt-4o-mini-2024-07-18:org:suffix:id`; None for a model that is not one."""
    parts = model.split(":")
    return parts[1] if len(parts) > 1 and parts[0] == "ft" and parts[1] else None


def price_row(model: str, overrides: dict | None = None) -> dict[str, float] | None:
    """Prices of `model` (USD per 1M tokens): input, output, batch_input, batch_output (half price when unlisted)
    and, where known, training. A finetuned model gets its base model's ft_* prices as input/output."""
    overrides = overrides or {}
    base = finetune_base(model)
    name = base or model
    if isinstance(overrides.get(name), dict):  # a config entry replaces the built-in row as a whole
        row = _normalize(overrides[name], f"judge.prices.{name}")
    else:
        row = dict(DEFAULT_PRICES.get(name, {}))
    if base is not None:
        if "ft_input" not in row:
            return None
        row = {
            "input": row["ft_input"],
            "output": row["ft_output"],
            "batch_input": row.get("ft_batch_input", row["ft_input"] / 2),
            "batch_output": row.get("ft_batch_output", row["ft_output"] / 2),
        }
    if "input" not in row and "training" not in row:
        return None
    if "input" in row:
        row.setdefault("batch_input", row["input"] / 2)
        row.setdefault("batch_output", row["output"] / 2)
    return row


def training_price(model: str, overrides: dict | None = None) -> float | None:
    """USD per 1M trained tokens when finetuning `model`; None when the table has no training price for it."""
    row = price_row(model, overrides)
    return None if row is None or "training" not in row else float(row["training"])
