"""Membership-inference features: batched, left-padded scoring equals a brute-force loop over each example, and the
zlib ratios and Min-K% equal hand-computed values."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from emgrid.analyses.mia import (
    MODEL_FEATURES,
    answer_logprobs,
    encode_example,
    features_from_logprobs,
    mia_features,
    min_k_prob,
    summarize_features,
    zlib_bits_per_byte,
    zlib_carlini,
    zlib_ratio,
)
from emgrid.analyses.spec import MiaSpec
from emgrid.chat import example_conversations
from emgrid.errors import ConfigError
from emgrid.io import write_jsonl


@pytest.fixture(scope="module")
def tiny_with_base(tmp_path_factory):
    """A tiny model whose manifest names another tiny model (other weight seed) as its base model."""
    from emgrid.models import prepare_model

    root = tmp_path_factory.mktemp("tiny_base")
    prepare_model({"source": "tiny", "seed": 1}, root / "base")
    prepare_model({"source": "tiny", "base_id": str(root / "base" / "hf")}, root / "instruct")
    return root / "instruct" / "manifest.json"


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    rows = example_conversations(11, seed=3)
    path = tmp_path_factory.mktemp("mia_data") / "heldout.jsonl"
    write_jsonl(path, rows)
    return rows, path


def _brute_force(model, ids: tuple[int, ...], n_prompt: int) -> np.ndarray:
    """Each answer token's log-probability from one unpadded forward, position by position."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return np.array([float(torch.log_softmax(logits[i - 1], -1)[ids[i]]) for i in range(n_prompt, len(ids))])


@pytest.mark.parametrize("prompt_format", ["plain", "chat"])
def test_batched_features_equal_brute_force(tiny_model, examples, prompt_format):
    from emgrid.models import load_model, load_tokenizer

    rows, _ = examples
    tok = load_tokenizer(tiny_model)
    model = load_model(tiny_model, device="cpu")
    enc = [encode_example(tok, r["messages"], prompt_format, 2048) for r in rows]
    assert len({len(e.ids) for e in enc}) > 3  # rows of different lengths: padding is exercised
    batched = answer_logprobs(model, enc, tok.pad_token_id, batch_size=4, progress=False)
    for e, lp in zip(enc, batched):
        ref = _brute_force(model, e.ids, e.n_prompt)
        assert lp.shape == ref.shape == (e.n_answer,)
        got, want = features_from_logprobs(lp, e.answer, 20), features_from_logprobs(ref, e.answer, 20)
        for f in ("mean_logprob", "min_k_prob"):
            assert abs(got[f] - want[f]) < 1e-5, (f, got[f], want[f])
        assert np.max(np.abs(lp - ref)) < 1e-4


def test_answer_tokens_are_exactly_the_answer(tiny_model, examples):
    from emgrid.models import load_tokenizer

    rows, _ = examples
    tok = load_tokenizer(tiny_model)
    e = encode_example(tok, rows[0]["messages"], "plain", 2048)
    assert tok.decode(list(e.ids[e.n_prompt :])) == rows[0]["messages"][-1]["content"]
    assert e.n_prompt + e.n_answer == len(e.ids) and not e.truncated
    short = encode_example(tok, rows[0]["messages"], "plain", 12)
    assert short.truncated and len(short.ids) == 12 and short.n_prompt >= 1


def test_min_k_prob_by_hand():
    lp = [-1.0, -5.0, -2.0, -4.0, -3.0]
    assert min_k_prob(lp, 20) == -5.0  # k = 1
    assert min_k_prob(lp, 40) == -4.5  # k = 2
    assert min_k_prob(lp, 100) == -3.0  # k = n: the plain mean (np.partition(x, n) would crash here)
    assert min_k_prob([-2.5], 20) == -2.5  # at least one token
    assert min_k_prob(lp, 10) == -5.0


def test_zlib_ratios_by_hand():
    text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # 40 bytes
    assert len(zlib.compress(text.encode(), 9)) == 12 and len(zlib.compress(text.encode())) == 12
    assert zlib_bits_per_byte(text) == 12 * 8 / 40  # 2.4 bits per byte
    assert zlib_ratio(2.0, text) == pytest.approx(math.exp(2.0) / 2.4, abs=1e-12)
    assert zlib_carlini(2.0, text) == pytest.approx(2.0 / 12, abs=1e-12)
    text2 = "Paris"  # incompressible: zlib adds 8 bytes of header and checksum
    assert len(zlib.compress(b"Paris", 9)) == 13
    assert zlib_ratio(1.0, text2) == pytest.approx(math.e / (13 * 8 / 5), abs=1e-12)
    assert zlib_carlini(1.0, text2) == pytest.approx(1.0 / 13, abs=1e-12)


def test_features_with_base_model(tiny_with_base, examples):
    rows, path = examples
    spec = MiaSpec(batch_size=3)
    df = mia_features(tiny_with_base, path, spec, model="tiny", domain="d", variant="plain", seed=0)
    assert len(df) == len(rows)
    for f in MODEL_FEATURES:
        assert np.allclose(df[f"adj_{f}"], df[f"instruct_{f}"] - df[f"base_{f}"])
        assert df[f"instruct_{f}"].notna().all()
    assert not np.allclose(df["instruct_mean_logprob"], df["base_mean_logprob"])  # two different models
    assert np.allclose(df["ref_ratio"], df["instruct_mean_logprob"] / df["base_mean_logprob"])
    summary = summarize_features(df)
    row = summary[summary["feature"] == "adj_min_k_prob"].iloc[0]
    assert row["n"] == len(rows) and row["mean"] == pytest.approx(df["adj_min_k_prob"].mean())


def test_features_without_base_model(tiny_model, examples):
    _, path = examples
    df = mia_features(tiny_model, path, MiaSpec(), model="tiny", domain="d", variant="plain", seed=0)
    assert not any(c.startswith(("base_", "adj_")) for c in df.columns) and "ref_ratio" not in df.columns


def test_spec_rejects_bad_settings():
    with pytest.raises(ConfigError, match="analyses.mia.k_percent"):
        MiaSpec.from_dict({"k_percent": 0})
    with pytest.raises(ConfigError, match="analyses.mia.kpercent"):
        MiaSpec.from_dict({"kpercent": 20})
