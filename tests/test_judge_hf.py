"""The local HF judge: exact whole-answer integer probabilities from the KV-cached trie, checked by brute force."""

from __future__ import annotations

import math

import pytest
import torch

from emgrid.judge import judge_answers
from emgrid.judge.hf_backend import IntTrie, exact_int_probs, int_probs_batch, render_prompt_ids
from emgrid.judge.scoring import categorize, expected_score
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import ResponseCache
from tests.support.judge_helpers import answer_rows, questions


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from emgrid.models import load_model, load_tokenizer

    tok, model = load_tokenizer(tiny_model), load_model(tiny_model)
    return tok, model, IntTrie(tok, model.get_output_embeddings().weight.shape[0])


def brute_force(model, trie, prompt_ids, n):
    """Sum over every tokenisation of n of P(tokens | prompt) * P(non-digit next token), each a full forward."""
    total = 0.0
    digit = torch.tensor(trie.digit_start)
    for path, m in trie.paths.items():
        if m != n:
            continue
        with torch.no_grad():
            lsm = torch.log_softmax(model(torch.tensor([prompt_ids + list(path)])).logits[0].float(), -1)
        lp = sum(float(lsm[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(path))
        total += math.exp(lp) * (1 - float(lsm[-1].exp()[digit].sum()))
    return total


def test_trie_covers_multi_token_integers(tiny):
    tok, _, trie = tiny
    assert sorted(set(trie.paths.values())) == list(range(101))
    by_int = {}
    for path, n in trie.paths.items():
        by_int.setdefault(n, []).append(tok.decode(list(path)))
    assert set(by_int[85]) == {"85", " 85"} and set(by_int[100]) == {"100", " 100"}
    assert max(len(p) for p in trie.paths) >= 3  # the Qwen pre-tokenizer splits digits: "100" is 3 tokens


def test_exact_probabilities_match_brute_force(tiny):
    tok, model, trie = tiny
    ids = render_prompt_ids(tok, [{"role": "user", "content": "Rate this answer from 0 to 100: it was fine."}])
    probs, mass, top = exact_int_probs(model, tok, trie, ids, batch_size=16)
    assert len(probs) == 101 and mass == pytest.approx(sum(probs.values())) and 0 < mass <= 1
    for n in (0, 7, 42, 85, 100):
        assert probs[str(n)] == pytest.approx(brute_force(model, trie, ids, n), rel=1e-4, abs=1e-12)
    assert top is not None and not top.strip().isdigit()


def _prompt(tok, text):
    return render_prompt_ids(tok, [{"role": "user", "content": text}], "Score: ")


def test_pruned_probabilities_stay_within_the_recorded_bound(tiny):
    tok, model, trie = tiny
    ids = _prompt(tok, "Rate this answer from 0 to 100: it was fine.")
    exact = int_probs_batch(model, tok, trie, [ids], prune_below=0.0)[0]
    assert exact["pruned_mass"] == 0.0
    # a threshold inside the tiny model's spread of first-token probabilities prunes some branches, not all
    with torch.no_grad():
        root = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
    first = sorted(math.exp(float(root[n[0]])) for n in trie.nodes_by_depth[1])
    cut = first[len(first) // 2]
    pruned = int_probs_batch(model, tok, trie, [ids], prune_below=cut)[0]
    bound = pruned["pruned_mass"]
    assert 0 < bound < 1 and pruned["int_mass"] > 0 and pruned["top_token"] == exact["top_token"]
    assert pruned["int_mass"] < exact["int_mass"] <= pruned["int_mass"] + bound + 1e-9
    for n in range(101):  # each pruned P(n) is a lower bound missing at most the pruned mass
        assert (
            pruned["int_probs"][str(n)] - 1e-9
            <= exact["int_probs"][str(n)]
            <= (pruned["int_probs"][str(n)] + bound + 1e-9)
        )
    gap = abs(expected_score(pruned["int_probs"], 0.0) - expected_score(exact["int_probs"], 0.0))
    assert 0 < gap <= 100 * bound / pruned["int_mass"]


def test_batched_prompts_match_one_at_a_time(tiny):
    tok, model, trie = tiny
    prompts = [
        _prompt(tok, t)
        for t in (
            "Rate it: ok.",
            "Rate this long answer from 0 to 100: it was a very fine and thorough answer indeed.",
            "Rate: bad answer, 0 to 100.",
        )
    ]
    assert len({len(p) for p in prompts}) == 3  # left padding is exercised
    together = int_probs_batch(model, tok, trie, prompts, batch_size=64, prune_below=1e-3)
    for p, t in zip(prompts, together):
        alone = int_probs_batch(model, tok, trie, [p], prune_below=1e-3)[0]
        assert t["top_token"] == alone["top_token"]
        assert t["pruned_mass"] == pytest.approx(alone["pruned_mass"], rel=1e-4, abs=1e-12)
        for n in range(101):
            assert t["int_probs"][str(n)] == pytest.approx(alone["int_probs"][str(n)], rel=1e-4, abs=1e-12)


def test_judge_answers_hf_backend_and_cache(tiny_model, tmp_path, monkeypatch):
    rows = answer_rows(3)
    spec = JudgeSpec(backend="hf", model="tiny-judge", batch_size=32)
    out = judge_answers(rows, questions(), spec, tmp_path, model_manifest=tiny_model, progress=False)
    assert len(out) == 6 and len(ResponseCache(tmp_path)) == 6
    for r in out:
        assert r["backend"] == "hf" and r["mode"] == "logprob" and len(r["int_probs"]) == 101
        assert r["cost_usd"] == 0.0 and r["usage"]["prompt_tokens"] > 10
        score, cat = categorize(r, min_mass=0.0)
        assert cat == "scored" and 0 <= score <= 100
    # the rerun needs no model at all
    import emgrid.judge.hf_backend

    def boom(*a, **k):
        raise AssertionError("model loaded on a cached rerun")

    monkeypatch.setattr(emgrid.judge.hf_backend, "load_model", boom)
    again = judge_answers(rows, questions(), spec, tmp_path, model_manifest=tiny_model, progress=False)
    assert [r["int_probs"] for r in again] == [r["int_probs"] for r in out] and all(r["cached"] for r in again)


def test_a_prompts_scores_do_not_depend_on_what_the_cache_already_held(tiny_model, tmp_path):
    """Two judge jobs that share answers (identical answers in two cells) race on one cache: what one finds cached
    changes what the other has left to judge. A prompt's scores must be bit-identical either way, or a rerun, a
    resumed crash or a SLURM run differs from a local one in the last float bits (CI failure of 2026-12-04)."""
    rows = answer_rows(6)
    spec = JudgeSpec(backend="hf", model="tiny-judge")
    fresh = judge_answers(rows, questions(), spec, tmp_path / "fresh", model_manifest=tiny_model, progress=False)
    warm = tmp_path / "warm"
    judge_answers(rows[1::2], questions(), spec, warm, model_manifest=tiny_model, progress=False)  # half cached
    again = judge_answers(rows, questions(), spec, warm, model_manifest=tiny_model, progress=False)
    assert sum(r["cached"] for r in again) == len(again) // 2
    assert [r["int_probs"] for r in again] == [r["int_probs"] for r in fresh]


def test_response_prefix_is_part_of_prompt_and_key(tiny_model, tmp_path):
    rows = answer_rows(1)
    plain = judge_answers(
        rows,
        questions(),
        JudgeSpec(backend="hf", model="j", metrics=["aligned"]),
        tmp_path,
        model_manifest=tiny_model,
        progress=False,
    )
    pre = judge_answers(
        rows,
        questions(),
        JudgeSpec(backend="hf", model="j", metrics=["aligned"], response_prefix="Score: "),
        tmp_path,
        model_manifest=tiny_model,
        progress=False,
    )
    exact = judge_answers(
        rows,
        questions(),
        JudgeSpec(backend="hf", model="j", metrics=["aligned"], response_prefix="Score: ", hf_prune_below=0),
        tmp_path,
        model_manifest=tiny_model,
        progress=False,
    )
    assert exact[0]["ledger_key"] != pre[0]["ledger_key"]  # pruned and exact results never share a ledger entry
    assert ResponseCache(tmp_path).get(exact[0]["ledger_key"])["response"]["pruned_mass"] == 0.0
    assert 0 <= ResponseCache(tmp_path).get(pre[0]["ledger_key"])["response"]["pruned_mass"] < 0.05
    assert pre[0]["ledger_key"] != plain[0]["ledger_key"]
    assert pre[0]["usage"]["prompt_tokens"] > plain[0]["usage"]["prompt_tokens"]
    assert pre[0]["int_probs"] != plain[0]["int_probs"]
    with pytest.raises(Exception, match="response_prefix works only with backend hf"):
        JudgeSpec(backend="openai", response_prefix="Score: ")
    with pytest.raises(Exception, match="hf_prune_below"):
        JudgeSpec(backend="hf", hf_prune_below=1.5)


def test_the_kv_cache_is_found_under_either_transformers_name(tiny):
    """transformers 5.24 calls it `cache`; 5.20, which the vLLM environment pins, `past_key_values` (the judge failed
    there with AttributeError: no attribute 'cache')."""
    from types import SimpleNamespace

    from emgrid.judge.hf_backend import cache_keyword, cache_of

    import inspect

    assert cache_keyword(tiny[1]) in inspect.signature(tiny[1].forward).parameters  # this environment's name

    def old_forward(input_ids=None, past_key_values=None, use_cache=None):
        return None

    assert cache_keyword(SimpleNamespace(forward=old_forward)) == "past_key_values"
    assert cache_of(SimpleNamespace(past_key_values="kv")) == "kv"
    assert cache_of(SimpleNamespace(cache="kv", past_key_values=None)) == "kv"
