"""Membership-inference (MIA) features of a domain's examples under the untouched model: how familiar the model
already finds a domain's answers before any finetuning.

Per example, the answer tokens are scored given the prompt (teacher forcing) and turned into four features:

- `mean_logprob`: mean log-probability of the answer tokens (the negated log-perplexity);
- `min_k_prob`: mean of the lowest k% token log-probabilities (Shi et al. 2024, "Min-K% Prob"; k = floor(n k%/100),
  at least 1 and at most n). Sort-based, so k equal to the token count is simply the mean. The study's notebook
  reports the *negation* of this value;
- `zlib_ratio`: the **study's variant**, perplexity over zlib bits per byte of the answer (level 9):
  `exp(mean NLL) / (8 * len(zlib(answer)) / len(answer))`;
- `zlib_carlini`: the **classic** Carlini et al. (2021) ratio, log-perplexity over the zlib length of the answer in
  bytes (zlib's default level): `mean NLL / len(zlib(answer))`.

With a base model (the model spec's `base_id`), every feature is also computed under the base model and the
**base-adjusted** feature `adj_<f> = instruct_<f> - base_<f>` is added (for `mean_logprob` this is the per-token
log-likelihood ratio of a reference-model attack such as PREMIA), plus `ref_ratio` = instruct log-perplexity over
base log-perplexity (Carlini et al.'s reference-model ratio). Both models score the same token ids (the instruct
model's tokenizer), so the adjustment compares like with like.

Forwards are batched with left padding and explicit position ids, so a padded row scores exactly as it would alone;
only the logits of answer positions are computed (`logits_to_keep`), which keeps big-vocabulary models in memory.
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from emgrid.analyses.domain_stats import analyze_domains, describe_target, target_rates
from emgrid.analyses.spec import MiaSpec
from emgrid.chat import render_prompt, validate_messages
from emgrid.errors import DataError
from emgrid.io import iter_jsonl, write_text
from emgrid.scores import read_summary
from emgrid.models import base_manifest, load_model, load_tokenizer

log = logging.getLogger("emgrid.mia")

MODEL_FEATURES = ("mean_logprob", "min_k_prob", "zlib_ratio", "zlib_carlini")
ID_COLUMNS = ("model", "domain", "variant", "seed", "index", "source_id")


def zlib_bits_per_byte(text: str) -> float:
    """zlib (level 9) compressed size in bits per byte of the UTF-8 text: the study's compressibility measure."""
    raw = text.encode("utf-8")
    if not raw:
        raise ValueError("zlib_bits_per_byte of an empty text")
    return len(zlib.compress(raw, 9)) * 8 / len(raw)


def zlib_ratio(mean_nll: float, text: str) -> float:
    """The study's zlib ratio: perplexity exp(mean NLL) over zlib bits per byte of the text."""
    return math.exp(mean_nll) / zlib_bits_per_byte(text)


def zlib_carlini(mean_nll: float, text: str) -> float:
    """Carlini et al. (2021)'s zlib ratio: log-perplexity (mean NLL) over the zlib length of the text in bytes."""
    return mean_nll / len(zlib.compress(text.encode("utf-8")))


def min_k_prob(logprobs: Sequence[float], k_percent: float) -> float:
    """Mean of the lowest k% token log-probabilities (at least one token, at most all of them)."""
    lp = np.sort(np.asarray(logprobs, dtype=np.float64))
    if lp.size == 0:
        raise ValueError("min_k_prob of no tokens")
    k = min(lp.size, max(1, math.floor(lp.size * k_percent / 100 + 1e-9)))
    return float(lp[:k].mean())


def features_from_logprobs(logprobs: Sequence[float], answer: str, k_percent: float) -> dict[str, float]:
    """The four per-model features of one answer from its token log-probabilities."""
    lp = np.asarray(logprobs, dtype=np.float64)
    nll = float(-lp.mean())
    return {
        "mean_logprob": -nll,
        "min_k_prob": min_k_prob(lp, k_percent),
        "zlib_ratio": zlib_ratio(nll, answer),
        "zlib_carlini": zlib_carlini(nll, answer),
    }


@dataclass(frozen=True)
class Encoded:
    """One example as token ids: `n_prompt` prompt tokens followed by `n_answer` answer tokens."""

    ids: tuple[int, ...]
    n_prompt: int
    n_answer: int
    answer: str  # the answer text that was scored (decoded from the kept tokens when truncated)
    truncated: bool


def split_example(messages: Sequence[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """(prompt turns, answer): the answer is the last assistant turn, the prompt everything before it."""
    return [dict(m) for m in messages[:-1]], messages[-1]["content"]


def prompt_text(tok, prompt: Sequence[dict[str, str]], prompt_format: str) -> str:
    """plain: the prompt turns' contents joined by blank lines (the study's question text); chat: the chat
    template up to and including the assistant generation prompt."""
    if prompt_format == "chat":
        return render_prompt(tok, prompt)
    return "\n\n".join(m["content"] for m in prompt)


def encode_example(tok, messages: Sequence[dict[str, str]], prompt_format: str, max_length: int) -> Encoded:
    """Prompt and answer tokenized separately and concatenated, so the answer mask is exact by construction.

    Over `max_length`, the prompt loses tokens from its start (keeping at least one), then the answer from its end.
    """
    prompt, answer = split_example(messages)
    text = prompt_text(tok, prompt, prompt_format)
    p_ids = list(tok(text, add_special_tokens=prompt_format == "plain")["input_ids"])
    a_ids = list(tok(answer, add_special_tokens=False)["input_ids"])
    if not p_ids or not a_ids:
        raise DataError("an example tokenizes to an empty prompt or answer")
    truncated = len(p_ids) + len(a_ids) > max_length
    if truncated:
        keep_p = max(1, min(len(p_ids), max_length - len(a_ids)))
        p_ids = p_ids[len(p_ids) - keep_p :]
        a_ids = a_ids[: max(1, max_length - keep_p)]
        answer = tok.decode(a_ids)
    return Encoded(tuple(p_ids + a_ids), len(p_ids), len(a_ids), answer, truncated)


def _supports_logits_to_keep(model) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def length_order(encoded: Sequence[Encoded]) -> list[int]:
    """Indexes sorted by token length (ties by position): batches of similar length waste little on padding."""
    return sorted(range(len(encoded)), key=lambda i: (len(encoded[i].ids), i))


def left_padded(batch: Sequence[Encoded], pad_id: int, device):
    """(input_ids, attention_mask, position_ids) of examples left-padded to the longest: every answer ends at the
    right edge, and position ids count real tokens only, so a padded row computes exactly what it would alone."""
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, width - len(e.ids) :] = torch.tensor(e.ids)
        mask[row, width - len(e.ids) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def answer_logprobs(
    model, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 8, progress: bool = True
) -> list[np.ndarray]:
    """Log-probability of every answer token given everything before it, per example (input order).

    Examples are sorted by length and batched with left padding; position ids count real tokens only, so padding
    changes nothing. Answers sit at the right end of every row, so only the last (longest answer + 1) positions need
    logits.
    """
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    keep_kw = _supports_logits_to_keep(model)
    order = length_order(encoded)
    out: list[np.ndarray | None] = [None] * len(encoded)
    bar = tqdm(total=len(encoded), desc="mia", disable=not progress, file=sys.stderr)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i].ids) for i in idx)
        a_max = max(encoded[i].n_answer for i in idx)
        ids, mask, positions = left_padded([encoded[i] for i in idx], pad_id, device)
        kw = {"logits_to_keep": a_max + 1} if keep_kw else {}
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **kw).logits
        logits = logits[:, -(a_max + 1) : -1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, width - a_max :, None]).squeeze(-1).cpu().numpy()
        for row, i in enumerate(idx):
            out[i] = lp[row, a_max - encoded[i].n_answer :].astype(np.float64)
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


def read_examples(path: str | Path) -> list[dict[str, Any]]:
    """Examples of a dataset split, each checked (errors name file:line)."""
    rows = []
    for line, row in iter_jsonl(path):
        try:
            row["messages"] = validate_messages(row.get("messages"), f"{path}:{line}")
        except ValueError as e:
            raise DataError(str(e)) from None
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no examples")
    return rows


def _model_features(model, tok, encoded: Sequence[Encoded], spec: MiaSpec, prefix: str) -> list[dict[str, float]]:
    lps = answer_logprobs(model, encoded, tok.pad_token_id, spec.batch_size)
    return [
        {f"{prefix}_{k}": v for k, v in features_from_logprobs(lp, e.answer, spec.k_percent).items()}
        for lp, e in zip(lps, encoded)
    ]


def adjusted_features(row: dict[str, float]) -> dict[str, float]:
    """Base-adjusted features: instruct minus base for each feature, and the log-perplexity ratio."""
    out = {f"adj_{f}": row[f"instruct_{f}"] - row[f"base_{f}"] for f in MODEL_FEATURES}
    base_nll = -row["base_mean_logprob"]
    out["ref_ratio"] = (-row["instruct_mean_logprob"]) / base_nll if base_nll > 0 else math.nan
    return out


def _check_vocab(model, encoded: Sequence[Encoded], what: str) -> None:
    top = max(max(e.ids) for e in encoded)
    vocab = model.get_input_embeddings().weight.shape[0]
    if top >= vocab:
        raise DataError(
            f"{what} has {vocab} token embeddings but the instruct tokenizer produced id {top}: "
            "base-adjusted features need a base model with the same tokenizer"
        )


def mia_features(
    manifest_path: str | Path,
    examples_path: str | Path,
    spec: MiaSpec,
    *,
    model: str,
    domain: str,
    variant: str,
    seed: int,
) -> pd.DataFrame:
    """One row per example: ids, token counts and every feature (`instruct_*`; `base_*`, `adj_*`, `ref_ratio`
    when the model has a base model)."""
    import torch

    rows = read_examples(examples_path)
    tok = load_tokenizer(manifest_path, padding_side="left")
    encoded = [encode_example(tok, r["messages"], spec.prompt_format, spec.max_length) for r in rows]
    lm = load_model(manifest_path, dtype=spec.dtype)
    feats = _model_features(lm, tok, encoded, spec, "instruct")
    del lm
    if base_manifest(manifest_path) is not None:
        base = load_model(manifest_path, dtype=spec.dtype, base=True)
        _check_vocab(base, encoded, "the base model")
        for f, b in zip(feats, _model_features(base, tok, encoded, spec, "base")):
            f.update(b)
            f.update(adjusted_features(f))
        del base
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    out = []
    for i, (r, e, f) in enumerate(zip(rows, encoded, feats)):
        meta = r.get("meta") or {}
        out.append(
            {
                "model": model,
                "domain": domain,
                "variant": variant,
                "seed": int(seed),
                "index": i,
                "source_id": meta.get("source_id", ""),
                "n_prompt_tokens": e.n_prompt,
                "n_answer_tokens": e.n_answer,
                "truncated": e.truncated,
                **f,
            }
        )
    return pd.DataFrame(out)


def mia_features_file(
    manifest_path: str | Path,
    examples_path: str | Path,
    spec: MiaSpec,
    features_csv: str | Path,
    summary_csv: str | Path,
    *,
    model: str,
    domain: str,
    seed: int,
) -> pd.DataFrame:
    """`mia_features` of one dataset split, written as the per-example CSV and the per-feature summary CSV."""
    df = mia_features(manifest_path, examples_path, spec, model=model, domain=domain, variant=spec.variant, seed=seed)
    write_text(features_csv, df.to_csv(index=False))
    write_text(summary_csv, summarize_features(df).to_csv(index=False))
    return df


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The feature columns of a features table, in a stable order."""
    return [c for c in df.columns if c.startswith(("instruct_", "base_", "adj_")) or c == "ref_ratio"]


def summarize_features(df: pd.DataFrame) -> pd.DataFrame:
    """Per model x domain x variant x seed and feature: n, mean, std, median (long format)."""
    keys = ["model", "domain", "variant", "seed"]
    out = []
    for key, g in df.groupby(keys, sort=True):
        for f in feature_columns(df):
            v = g[f].dropna()
            out.append(
                {
                    **dict(zip(keys, key)),
                    "feature": f,
                    "n": int(v.size),
                    "mean": float(v.mean()),
                    "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                    "median": float(v.median()),
                }
            )
    return pd.DataFrame(out, columns=keys + ["feature", "n", "mean", "std", "median"])


def domain_feature_means(df: pd.DataFrame) -> pd.DataFrame:
    """Per model x domain: the mean of every feature over all examples (dataset seeds pooled), and the count."""
    feats = feature_columns(df)
    g = df.groupby(["model", "domain"], sort=True)
    out = g[feats].mean().reset_index()
    out.insert(2, "n_examples", g.size().to_numpy())
    return out


def mia_analysis_files(
    feature_csvs: Sequence[str | Path],
    summary_csv: str | Path,
    target,
    n_permutations: int,
    seed: int,
    domains_csv: str | Path,
    tests_csv: str | Path,
) -> pd.DataFrame:
    """Domain feature means against the target rate (correlations, leave-pair-out AUC, permutation p); writes both CSVs and
    returns the tests table."""
    df = pd.concat([pd.read_csv(p) for p in feature_csvs], ignore_index=True)
    means = domain_feature_means(df)
    rates = target_rates(read_summary(summary_csv), target)
    domains, tests = analyze_domains(means, rates, feature_columns(means), n_permutations=n_permutations, seed=seed)
    tests["target"] = describe_target(target)
    write_text(domains_csv, domains.to_csv(index=False))
    write_text(tests_csv, tests.to_csv(index=False))
    log.info("MIA analysis: %d domains x models, %d tests", len(domains), len(tests))
    return tests
