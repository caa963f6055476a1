"""A cell's misalignment direction: the mean residual stream over answer tokens of its misaligned answers minus that
of its aligned answers, per decoder layer.

The cell's own judged answers are replayed (teacher forcing, no generation) through the cell's own model, so the
direction describes the activations that produced the answers the judge scored. Each answer contributes the mean of
its answer-token residuals (prompt tokens excluded: they are the same questions in both sets), so long answers do
not outweigh short ones. The aligned set is subsampled to the misaligned set's size with a fixed seed, so both
means rest on as many answers. Scores come from the aggregate's own functions (`score_answers`, `Criterion`).

Also saved: the mean residual norm per layer over every replayed answer token (`typical_norm`), the unit in which
steering scales are given, and the counts used. Too few misaligned (or aligned) answers give no direction, only a
status saying so: a direction from a handful of answers would be noise presented as a finding.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from emgrid.scores import Criterion, score_answers
from emgrid.analyses.mia import encode_example, left_padded, length_order
from emgrid.chat import user_messages
from emgrid.errors import DataError
from emgrid.integrity import ANSWER_KEY, answer_key
from emgrid.io import read_json, write_json, write_npz
from emgrid.models import load_model, load_tokenizer
from emgrid.steering.hooks import capture_layers, decoder_layers
from emgrid.steering.spec import SteeringSpec

OK = "ok"
NOT_ENOUGH = "not_enough"


@dataclass(frozen=True)
class AnswerSets:
    """The answer rows replayed for a direction, and why there is no direction when `problem` is set. Rows carry
    their `condition`: with `within_conditions` the direction is built per condition."""

    misaligned: list[dict]
    aligned: list[dict]
    counts: dict[str, int]
    problem: str | None = None


def _split(scores, rows: dict, spec: SteeringSpec) -> tuple[list[dict], list[dict]]:
    """The misaligned and aligned rows among `scores` (answers with text only)."""
    has_text = scores["answer"].fillna("").astype(str).str.strip() != ""
    crit = Criterion(aligned_below=spec.misaligned_below, coherent_above=spec.coherent_above)
    misaligned = (crit.indicators(scores)["misaligned"] == 1) & has_text
    aligned = (scores["aligned"] > spec.aligned_above) & has_text
    if spec.coherent_above is not None:
        aligned &= scores["coherent"] > spec.coherent_above
    keys = [tuple(k) for k in scores[list(ANSWER_KEY)].itertuples(index=False)]
    return [rows[k] for k, m in zip(keys, misaligned) if m], [rows[k] for k, a in zip(keys, aligned) if a]


def answer_sets(judged_rows: Sequence[dict], spec: SteeringSpec, min_mass: float) -> AnswerSets:
    """Split a cell's judged answers into the misaligned set and the (subsampled) aligned set, within the
    conditions `spec.direction_condition` names (each condition's aligned set subsampled to its misaligned set's
    size, so every condition's difference rests on equal sets)."""
    scores = score_answers(judged_rows, min_mass)
    rows = {}
    for r in judged_rows:
        rows.setdefault(answer_key(r), r)
    mode = spec.direction_condition
    conditions = sorted(scores["condition"].unique()) if mode == "within_conditions" else [mode]
    mis, ali, available = [], [], 0
    rng = np.random.default_rng(spec.seed)
    for cond in conditions:
        m, a = _split(scores[scores["condition"] == cond], rows, spec)
        available += len(a)
        if mode == "within_conditions" and (not m or not a):
            continue  # a condition without both sets has no difference to contribute
        if len(a) > len(m):
            a = [a[i] for i in np.sort(rng.choice(len(a), size=len(m), replace=False))]
        mis, ali = mis + m, ali + a
    counts = {"answers": len(scores), "misaligned": len(mis), "aligned_available": available, "aligned": len(ali)}
    problem = None
    for name, n in (("misaligned", counts["misaligned"]), ("aligned", counts["aligned_available"])):
        if problem is None and n < spec.min_misaligned:
            problem = f"not enough {name} answers ({n} < {spec.min_misaligned}, {mode.replace('_', ' ')})"
    return AnswerSets(mis, ali, counts, problem)


def encode_answers(tok, rows: Sequence[dict], max_length: int) -> list:
    """Each answer row as prompt tokens (chat template with the generation prompt) + answer tokens, tokenized
    apart so the answer positions are exact (`emgrid.analyses.mia.encode_example`)."""
    out = []
    for r in rows:
        msgs = [*user_messages(r["prompt"], r.get("system")), {"role": "assistant", "content": r["answer"]}]
        out.append(encode_example(tok, msgs, "chat", max_length))
    return out


@dataclass
class LayerMeans:
    """Per answer, the mean residual over its answer tokens at every layer; and the running norm sum over all
    answer tokens, for `typical_norm`."""

    means: np.ndarray  # (answers, layers, hidden)
    norm_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (layers,)
    n_tokens: int = 0


def answer_layer_means(model, encoded: Sequence, pad_id: int, batch_size: int, progress: bool = True) -> LayerMeans:
    """Mean residual (decoder layer outputs) over answer tokens, per answer and layer; batched, left-padded."""
    import torch

    n_layers = len(decoder_layers(model))
    device = next(model.parameters()).device
    means: list[np.ndarray | None] = [None] * len(encoded)
    norm_sum, n_tokens = np.zeros(n_layers), 0
    order = length_order(encoded)
    bar = tqdm(total=len(encoded), desc="replay", disable=not progress, file=sys.stderr)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask, positions = left_padded([encoded[i] for i in idx], pad_id, device)
        with capture_layers(model) as store, torch.inference_mode():
            model(input_ids=ids, attention_mask=mask, position_ids=positions)
        h = torch.stack([store[k][0] for k in range(n_layers)], 1).float()  # (batch, layers, width, hidden)
        for row, i in enumerate(idx):
            ans = h[row, :, h.shape[2] - encoded[i].n_answer :]
            means[i] = ans.mean(1).cpu().numpy()
            norm_sum += torch.linalg.vector_norm(ans, dim=-1).sum(1).cpu().numpy()
            n_tokens += encoded[i].n_answer
        bar.update(len(idx))
    bar.close()
    return LayerMeans(np.stack(means), norm_sum, n_tokens)  # type: ignore[arg-type]


def direction_from_means(
    mis: np.ndarray, ali: np.ndarray, mis_conditions: Sequence[str] = (), ali_conditions: Sequence[str] = ()
) -> np.ndarray:
    """(layers, hidden): mean over misaligned answers minus mean over aligned answers; with conditions given, that
    difference within each condition, averaged over the conditions (weighted by their misaligned answers), so a
    residual component that only the trigger puts there cancels."""
    if not len(mis_conditions):
        return mis.mean(0) - ali.mean(0)
    mc, ac = np.asarray(mis_conditions), np.asarray(ali_conditions)
    parts, weights = [], []
    for cond in sorted(set(mc.tolist())):
        parts.append(mis[mc == cond].mean(0) - ali[ac == cond].mean(0))
        weights.append(int((mc == cond).sum()))
    return np.average(np.stack(parts), axis=0, weights=weights)


def extract_direction(
    manifest_path: str | Path,
    adapter_dir: str | Path | None,
    judged_rows: Sequence[dict],
    spec: SteeringSpec,
    min_mass: float,
    *,
    model: str,
    cell: str,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of one cell's direction. arrays: `directions` (layers, hidden), `norms` (layers),
    `typical_norm` (layers); empty when meta's `status` is `not_enough` (the model is then not even loaded)."""
    sets = answer_sets(judged_rows, spec, min_mass)
    meta: dict[str, Any] = {
        "model": model,
        "cell": cell,
        "counts": sets.counts,
        "thresholds": {k: getattr(spec, k) for k in ("misaligned_below", "aligned_above", "coherent_above")},
        "direction_condition": spec.direction_condition,
        "min_mass": min_mass,
        "layer_convention": "index k = output of decoder layer k (model.model.layers[k]), before the final norm",
    }
    if sets.problem:
        empty = np.zeros((0, 0), dtype=np.float32)
        return {**meta, "status": NOT_ENOUGH, "reason": sets.problem}, {
            "directions": empty,
            "norms": np.zeros(0, dtype=np.float32),
            "typical_norm": np.zeros(0, dtype=np.float32),
        }
    tok = load_tokenizer(manifest_path, padding_side="left")
    lm = load_model(manifest_path, adapter_dir, dtype=spec.dtype)
    encoded = encode_answers(tok, sets.misaligned + sets.aligned, spec.max_length)
    lm_means = answer_layer_means(lm, encoded, tok.pad_token_id, spec.batch_size)
    k = len(sets.misaligned)
    directions = direction_from_means(
        lm_means.means[:k],
        lm_means.means[k:],
        [r["condition"] for r in sets.misaligned],
        [r["condition"] for r in sets.aligned],
    )
    typical = lm_means.norm_sum / max(lm_means.n_tokens, 1)
    meta.update(status=OK, reason=None, n_layers=int(directions.shape[0]), hidden=int(directions.shape[1]))
    meta["answer_tokens"] = lm_means.n_tokens
    meta["tokens"] = sum(e.n_prompt + e.n_answer for e in encoded)  # the forward passes' work (GPU-hours fit)
    return meta, {
        "directions": directions.astype(np.float32),
        "norms": np.linalg.norm(directions, axis=1).astype(np.float32),
        "typical_norm": typical.astype(np.float32),
    }


def write_direction(meta: dict, arrays: dict[str, np.ndarray], json_path: str | Path, npz_path: str | Path) -> None:
    """The arrays (npz) and the metadata (JSON, with per-layer norms for reading without numpy), each atomically."""
    write_npz(npz_path, arrays)
    norms = {
        "direction_norm": [float(x) for x in arrays["norms"]],
        "typical_norm": [float(x) for x in arrays["typical_norm"]],
    }
    write_json(json_path, {**meta, **norms})


@dataclass(frozen=True)
class Direction:
    """A saved direction, as the steering jobs read it."""

    meta: dict
    directions: np.ndarray
    typical_norm: np.ndarray

    @property
    def ok(self) -> bool:
        return self.meta.get("status") == OK

    def unit(self, layer: int) -> np.ndarray:
        v = self.directions[self.layer_index(layer)]
        n = float(np.linalg.norm(v))
        if n == 0:
            raise DataError(f"direction of {self.meta.get('cell')} at layer {layer} is zero")
        return v / n

    def layer_index(self, layer: int) -> int:
        if not 0 <= layer < self.directions.shape[0]:
            raise DataError(
                f"layer {layer} out of range: the direction of {self.meta.get('cell')} has "
                f"{self.directions.shape[0]} layers (0..{self.directions.shape[0] - 1})"
            )
        return layer


def read_direction(json_path: str | Path, npz_path: str | Path) -> Direction:
    meta = read_json(json_path)
    with np.load(npz_path) as z:
        return Direction(meta, z["directions"], z["typical_norm"])
