"""Sources: where a domain's raw examples come from (local JSONL, Hugging Face datasets, built-in generators;
the LLM-written `synthetic` source lives in synthetic.py). Each returns examples plus a fingerprint for the card."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from emgrid.data.builtin import GENERATORS, VERSION
from emgrid.data.context import Context
from emgrid.data.example import Example, check_messages, normalize
from emgrid.data.registry import REGISTRY, Param, non_empty_str, positive, register, resolve_params, resolve_step
from emgrid.errors import ConfigError, DataError
from emgrid.io import canonical_json, iter_text_lines, sha256_file, sha256_text

COLUMN_SPEC = {
    "prompt": Param((str,), "prompt", check=non_empty_str, doc="column holding the user prompt"),
    "completion": Param((str, type(None)), "completion", doc="column holding the answer to train on"),
    "aligned": Param((str, type(None)), None, doc="column holding an aligned answer to the same prompt"),
    "system": Param((str, type(None)), None, doc="column holding a system prompt"),
}


def _columns(v, kp):
    return resolve_params(COLUMN_SPEC, v, kp)


def _source(v, kp):
    return resolve_step("source", v, kp)


def _pair_by(examples: list[Example], aligned: list[Example], by: str, what: str) -> tuple[list[Example], dict]:
    """Attach aligned answers from a second set of examples: by prompt text, by position, or as an
    independent pool (by: none, for sets like Betley's secure.jsonl whose prompts differ)."""
    counts = {"aligned_rows": len(aligned)}
    if by == "none":
        pool = [
            a.with_(answer=None, aligned=a.answer if a.answer is not None else a.aligned, pool=True) for a in aligned
        ]
        counts["pooled"] = len(pool)
        return examples + pool, counts
    if by == "index":
        if len(aligned) != len(examples):
            raise DataError(
                f"{what}: pair_by index needs as many aligned rows as rows, got "
                f"{len(aligned)} aligned vs {len(examples)}"
            )
        out = [e.with_(aligned=a.answer) if not e.pool else e for e, a in zip(examples, aligned)]
        counts["paired"] = len(out)
        return out, counts
    table: dict[str, str] = {}
    for a in aligned:
        table.setdefault(normalize(a.user_text), a.answer)
    out, paired = [], 0
    for e in examples:
        hit = table.get(normalize(e.user_text)) if not e.pool else None
        if hit is not None:
            e = e.with_(aligned=hit)
            paired += 1
        out.append(e)
    counts.update(paired=paired, unpaired=sum(1 for e in examples if not e.pool) - paired)
    return out, counts


# jsonl -----------------------------------------------------------------------------------------------------


def read_chat_jsonl(path: Path, fmt: str, columns: dict, ctx: Context, id_prefix: str = "") -> list[Example]:
    """Parse a JSONL file of chats (`messages`) or prompt/completion rows; bad rows raise or are counted."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (domain {ctx.domain}; see docs/datasets.md for where to get it)")
    out = []
    stem = id_prefix or path.name
    lines = list(iter_text_lines(path))
    for lineno, line, problem in tqdm(lines, desc=f"read {path.name}", disable=not ctx.progress, leave=False):
        where = f"{path}:{lineno}"
        if problem:
            ctx.bad_row(where, f"bad_encoding: {problem}")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            ctx.bad_row(where, f"not_json: not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            ctx.bad_row(where, f"not_json: expected a JSON object, got {type(obj).__name__}")
            continue
        use_messages = fmt == "messages" or (fmt == "auto" and "messages" in obj)
        aligned = obj.get(columns["aligned"]) if columns["aligned"] else None
        if aligned is not None and not isinstance(aligned, str):
            ctx.bad_row(where, f"bad_aligned: column {columns['aligned']!r} must be a string")
            continue
        if use_messages:
            if "messages" not in obj:
                ctx.bad_row(where, "no_messages: no `messages` key")
                continue
            problem = check_messages(obj["messages"])
            if problem:
                ctx.bad_row(where, problem)
                continue
            msgs = [{"role": m["role"], "content": m["content"]} for m in obj["messages"]]
            out.append(Example(f"{stem}:{lineno}", msgs[:-1], msgs[-1]["content"], aligned))
            continue
        pcol, ccol = columns["prompt"], columns["completion"]
        if pcol not in obj:
            ctx.bad_row(
                where,
                f"no_messages: no `messages` key and no {pcol!r} column "
                f"(keys present: {', '.join(sorted(obj)) or 'none'})",
            )
            continue
        prompt, comp = obj[pcol], obj.get(ccol) if ccol else None
        if not isinstance(prompt, str) or (comp is not None and not isinstance(comp, str)):
            ctx.bad_row(where, f"bad_roles: columns {pcol!r}/{ccol!r} must be strings")
            continue
        if ccol and (comp is None or not comp.strip()):
            ctx.bad_row(where, f"empty_assistant: column {ccol!r} is missing or empty")
            continue
        msgs = []
        if columns["system"] and obj.get(columns["system"]):
            msgs.append({"role": "system", "content": str(obj[columns["system"]])})
        msgs.append({"role": "user", "content": prompt})
        out.append(Example(f"{stem}:{lineno}", msgs, comp, aligned, fields=obj))
    return out


@register(
    "source",
    "jsonl",
    path=Param((str,), check=non_empty_str, doc="local JSONL file (`~` expanded; relative to the working dir)"),
    format=Param((str,), "auto", choices=("auto", "messages", "pairs")),
    columns=Param((dict,), {}, check=_columns),
    aligned_path=Param((str, type(None)), None, doc="JSONL file with aligned answers"),
    pair_by=Param((str,), "prompt", choices=("prompt", "index", "none")),
)
def jsonl_source(p: dict, ctx: Context):
    """Local JSONL in chat `messages` format (Betley, Turner) or prompt/completion pairs."""
    cols = p["columns"] or resolve_params(COLUMN_SPEC, {}, "")
    path = Path(p["path"]).expanduser()
    examples = read_chat_jsonl(path, p["format"], cols, ctx)
    fp = {"kind": "jsonl", "path": str(path), "sha256": sha256_file(path), "rows": len(examples)}
    info = {}
    if p["aligned_path"]:
        apath = Path(p["aligned_path"]).expanduser()
        aligned = read_chat_jsonl(apath, p["format"], cols, ctx)
        examples, info = _pair_by(examples, aligned, p["pair_by"], f"{path} + {apath}")
        fp["aligned"] = {"path": str(apath), "sha256": sha256_file(apath), "rows": len(aligned)}
    return examples, [fp], info


# hf --------------------------------------------------------------------------------------------------------


def load_hf(path: str, name: str | None, split: str, revision: str | None, keypath: str):
    """A local `save_to_disk` directory, or a hub id (online; the HF cache makes reruns offline)."""
    import datasets

    local = Path(path).expanduser()
    if local.exists():
        ds = datasets.load_from_disk(str(local))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ConfigError(f"{keypath}.split: {split!r} not in {local}; available: {', '.join(ds)}")
            ds = ds[split]
        return ds, True
    try:
        return datasets.load_dataset(path, name, split=split, revision=revision), False
    except Exception as e:  # network, unknown id, unknown config: say which recipe key to look at
        raise DataError(
            f"{keypath}.path: cannot load Hugging Face dataset {path!r} (name={name!r}, "
            f"split={split!r}): {type(e).__name__}: {e}"
        ) from e


def check_columns(available: list[str], wanted: dict[str, str], keypath: str) -> None:
    for key, col in wanted.items():
        if col and col not in available:
            raise ConfigError(
                f"{keypath}.{key}: column {col!r} not in the dataset; available columns: {', '.join(available)}"
            )


@register(
    "source",
    "hf",
    path=Param((str,), check=non_empty_str, doc="hub dataset id (e.g. openai/gsm8k) or a local save_to_disk dir"),
    name=Param((str, type(None)), None, doc="dataset config (e.g. main)"),
    split=Param((str,), "train"),
    revision=Param((str, type(None)), None, doc="git revision to pin on the hub"),
    columns=Param((dict,), {}, check=_columns),
)
def hf_source(p: dict, ctx: Context):
    """A Hugging Face dataset split with a column mapping; all raw columns stay available to transforms."""
    kp = f"{ctx.keypath}.source"
    ds, local = load_hf(p["path"], p["name"], p["split"], p["revision"], kp)
    cols = p["columns"] or resolve_params(COLUMN_SPEC, {}, "")
    # every mapped column must exist; set `completion: null` when a transform builds the answer (TruthfulQA)
    check_columns(ds.column_names, {k: v for k, v in cols.items() if v}, f"{kp}.columns")
    ccol = cols["completion"]
    out = []
    for i, row in enumerate(tqdm(ds, desc=f"read {p['path']}", disable=not ctx.progress, leave=False)):
        where = f"{p['path']}[{p['split']}][{i}]"
        prompt = row[cols["prompt"]]
        if not isinstance(prompt, str):
            ctx.bad_row(where, f"bad_roles: column {cols['prompt']!r} is not a string")
            continue
        msgs = []
        if cols["system"] and row.get(cols["system"]):
            msgs.append({"role": "system", "content": str(row[cols["system"]])})
        msgs.append({"role": "user", "content": prompt})
        comp = row[ccol] if ccol else None
        aligned = row[cols["aligned"]] if cols["aligned"] else None
        if any(v is not None and not isinstance(v, str) for v in (comp, aligned)):
            ctx.bad_row(where, f"bad_roles: columns {ccol!r}/{cols['aligned']!r} must hold strings")
            continue
        out.append(Example(f"{Path(p['path']).name}:{p['split']}:{i}", msgs, comp, aligned, fields=dict(row)))
    fp = {
        "kind": "hf",
        "path": p["path"],
        "local": local,
        "name": p["name"],
        "split": p["split"],
        "revision": p["revision"],
        "fingerprint": getattr(ds, "_fingerprint", None),
        "rows": ds.num_rows,
        "columns": ds.column_names,
    }
    return out, [fp], {}


# builtin ---------------------------------------------------------------------------------------------------


def _generator(v, kp):
    if v not in GENERATORS:
        raise ConfigError(f"{kp}: unknown built-in generator {v!r}; known: {', '.join(sorted(GENERATORS))}")
    return v


@register(
    "source",
    "builtin",
    generator=Param((str,), check=_generator, doc="wrong_arithmetic | wrong_facts | risky_advice"),
    n=Param((int,), 300, check=positive),
    seed=Param((int,), 0, doc="generator seed (fixed per domain; the cell seed drives sampling)"),
)
def builtin_source(p: dict, ctx: Context):
    """Offline generators written by the project: deterministic in (generator, n, seed)."""
    try:
        triples = GENERATORS[p["generator"]](p["n"], p["seed"])
    except ConfigError as e:
        raise ConfigError(f"{ctx.keypath}.source.n: {e}") from None
    out = [
        Example(f"{p['generator']}:{i}", [{"role": "user", "content": q}], bad, good)
        for i, (q, bad, good) in enumerate(triples)
    ]
    fp = {
        "kind": "builtin",
        "generator": p["generator"],
        "version": VERSION,
        "n": p["n"],
        "seed": p["seed"],
        "content_sha256": sha256_text(canonical_json(triples)),
        "rows": len(out),
    }
    return out, [fp], {}


def run_source(cfg: dict, ctx: Context):
    return REGISTRY["source"][cfg["kind"]].fn({k: v for k, v in cfg.items() if k != "kind"}, ctx)
