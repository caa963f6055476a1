"""Steering: hooks on the tiny model, direction extraction, controls, the not-enough path and the matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from emgrid.errors import ConfigError
from emgrid.steering import directions as D
from emgrid.steering.hooks import ablate_direction, add_vector, capture_layers, layer_hook
from emgrid.steering.spec import SteeringSpec
from emgrid.steering.runs import answer_runs
from emgrid.steering.steer import SteerJob, parse_steer, random_direction, steering_vector


@pytest.fixture(scope="module")
def lm(tiny_model):
    from emgrid.models import load_model, load_tokenizer

    return load_model(tiny_model, device="cpu"), load_tokenizer(tiny_model)


def _hidden(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids, output_hidden_states=True).hidden_states


def _ids(tok):
    return tok("Hello there, how are you today?", return_tensors="pt")["input_ids"]


@pytest.mark.parametrize("layer", [0, 1])
def test_hook_adds_exactly_the_vector_at_its_layer_and_nowhere_else(lm, layer):
    model, tok = lm
    ids = _ids(tok)
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with capture_layers(model) as plain:
        before = _hidden(model, ids)
    with capture_layers(model) as steered, add_vector(model, layer, v):
        after = _hidden(model, ids)
    # hidden_states[k + 1] is layer k's output for k < n - 1; the last entry is after the final norm
    for k in range(layer + 1):
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)  # nothing before the layer moves
    if layer + 1 < len(before) - 1:
        torch.testing.assert_close(
            after[layer + 1] - before[layer + 1], v.expand_as(before[layer + 1]), atol=1e-5, rtol=0
        )
    shift = steered[layer][0] - plain[layer][0]
    torch.testing.assert_close(shift, v.expand_as(shift), atol=1e-5, rtol=0)  # every position, exactly v
    for k in range(layer):
        torch.testing.assert_close(steered[k][0], plain[k][0], rtol=0, atol=0)
    # and the hook is gone afterwards
    torch.testing.assert_close(_hidden(model, ids)[-1], before[-1], rtol=0, atol=0)


def test_ablation_leaves_the_layer_orthogonal_to_the_direction(lm):
    model, tok = lm
    ids = _ids(tok)
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    v_hat = v / v.norm()
    assert (_hidden(model, ids)[1][0] @ v_hat).abs().max() > 1e-2  # not orthogonal to begin with
    with ablate_direction(model, 0, v):
        h = _hidden(model, ids)[1][0]
    assert (h @ v_hat).abs().max() < 1e-5


def test_hook_handles_tuple_outputs_of_older_transformers():
    layer = torch.nn.Module()
    layer.forward = lambda x: (x, "cache")
    body = torch.nn.Module()
    body.layers = torch.nn.ModuleList([_TupleLayer()])
    model = torch.nn.Module()
    model.model = body
    with layer_hook(model, 0, lambda h: h + 1):
        out = model.model.layers[0](torch.zeros(2))
    assert torch.equal(out[0], torch.ones(2)) and out[1] == "cache"


class _TupleLayer(torch.nn.Module):
    def forward(self, x):
        return (x, "cache")


def test_hook_rejects_a_layer_the_model_lacks(lm):
    with pytest.raises(IndexError, match="layer 5 out of range: the model has 2 decoder layers"):
        with add_vector(lm[0], 5, torch.zeros(4)):
            pass


def _rows(n, answer="The answer is short."):
    return [
        {"prompt": f"question {i}?", "system": None, "answer": f"{answer} {i}", "question_key": f"q{i}"}
        for i in range(n)
    ]


def test_extraction_recovers_a_planted_difference(lm):
    """The same answers replayed with a vector planted at layer 0 (misaligned set) and without (aligned set): the
    direction at layer 0 is the planted vector."""
    model, tok = lm
    planted = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    enc = D.encode_answers(tok, _rows(5), max_length=64)
    plain = D.answer_layer_means(model, enc, tok.pad_token_id, batch_size=2, progress=False)
    with add_vector(model, 0, planted):
        shifted = D.answer_layer_means(model, enc, tok.pad_token_id, batch_size=3, progress=False)
    direction = D.direction_from_means(shifted.means, plain.means)
    np.testing.assert_allclose(direction[0], planted.numpy(), atol=1e-4)
    assert np.linalg.norm(direction[1]) > 0  # downstream layers see it too, transformed


def test_answer_means_cover_answer_tokens_only_and_ignore_padding(lm):
    model, tok = lm
    rows = _rows(3) + [
        {"prompt": "a much longer question " * 5, "system": "be brief", "answer": "ok", "question_key": "x"}
    ]
    enc = D.encode_answers(tok, rows, max_length=128)
    got = D.answer_layer_means(model, enc, tok.pad_token_id, batch_size=4, progress=False)
    norms, tokens = 0.0, 0
    for i, e in enumerate(enc):
        with capture_layers(model, [0]) as store, torch.inference_mode():
            model(input_ids=torch.tensor([e.ids]))
        ans = store[0][0][0, -e.n_answer :]
        np.testing.assert_allclose(got.means[i, 0], ans.mean(0).numpy(), atol=1e-4)
        norms += float(ans.norm(dim=-1).sum())
        tokens += e.n_answer
    assert got.n_tokens == tokens
    assert got.norm_sum[0] == pytest.approx(norms, rel=1e-5)


def _judged(scores, condition="no_trigger", start=0):
    """Judged rows (logprob mode, all mass on one integer) for answers with the given (aligned, coherent)."""
    out = []
    for i, (a, c) in enumerate(scores, start=start):
        ans = {
            "model": "tiny",
            "cell": "wrong_facts-backdoor-s0",
            "qset": "demo",
            "question_key": f"q{i % 3}",
            "condition": condition,
            "sample": i,
            "paraphrase_index": 0,
            "prompt": f"question {i}?",
            "question": f"question {i}?",
            "system": None,
            "answer": f"answer number {i}",
        }
        for metric, s in (("aligned", a), ("coherent", c)):
            out.append(
                {
                    **ans,
                    "metric": metric,
                    "mode": "logprob",
                    "int_probs": {str(s): 1.0},
                    "int_mass": 1.0,
                    "top_token": None,
                    "error": None,
                }
            )
    return out


def test_answer_sets_use_the_thresholds_and_subsample_the_aligned_set():
    spec = SteeringSpec(min_misaligned=2, seed=0)
    scores = [(10, 80)] * 3 + [(10, 40)] * 2 + [(90, 90)] * 6 + [(50, 90)] * 2 + [(90, 20)]
    sets = D.answer_sets(_judged(scores), spec, min_mass=0.25)
    assert sets.problem is None
    assert sets.counts == {"answers": 14, "misaligned": 3, "aligned_available": 6, "aligned": 3}
    assert all("answer number" in r["answer"] for r in sets.misaligned + sets.aligned)
    assert {r["sample"] for r in sets.misaligned} == {0, 1, 2}
    assert {r["sample"] for r in sets.aligned} <= set(range(5, 11))
    again = D.answer_sets(_judged(scores), spec, min_mass=0.25)
    assert [r["sample"] for r in again.aligned] == [r["sample"] for r in sets.aligned]  # seeded
    no_coherence = D.answer_sets(_judged(scores), SteeringSpec(min_misaligned=2, coherent_above=None), 0.25)
    assert no_coherence.counts["misaligned"] == 5 and no_coherence.counts["aligned_available"] == 7


def test_not_enough_misaligned_answers_gives_a_status_not_a_direction(tmp_path):
    spec = SteeringSpec(min_misaligned=10)
    judged = _judged([(10, 80)] * 3 + [(90, 90)] * 20)
    # the manifest does not exist: the model must not even be loaded
    meta, arrays = D.extract_direction(tmp_path / "none.json", None, judged, spec, 0.25, model="tiny", cell="c")
    assert meta["status"] == D.NOT_ENOUGH
    assert meta["reason"] == "not enough misaligned answers (3 < 10, no trigger)"
    assert arrays["directions"].size == 0
    D.write_direction(meta, arrays, tmp_path / "d.json", tmp_path / "d.npz")
    d = D.read_direction(tmp_path / "d.json", tmp_path / "d.npz")
    assert not d.ok
    result = _answer_runs(tmp_path / "none.json", {"c-plain-s0.L0.add1": 0}, {"c-plain-s0": d}, tmp_path)
    assert result.rows == {"c-plain-s0.L0.add1": []} and result.loads == 0
    assert result.skipped["c-plain-s0.L0.add1"].startswith("no direction of c-plain-s0: not enough misaligned")
    aligned_short = D.answer_sets(_judged([(10, 80)] * 12 + [(90, 90)] * 2), spec, 0.25)
    assert aligned_short.problem == "not enough aligned answers (2 < 10, no trigger)"


def test_extract_direction_end_to_end_on_the_tiny_model(tiny_model, tmp_path):
    spec = SteeringSpec(min_misaligned=2)
    meta, arrays = D.extract_direction(
        tiny_model,
        None,
        _judged([(10, 80)] * 3 + [(90, 90)] * 5),
        spec,
        0.25,
        model="tiny",
        cell="wrong_facts-backdoor-s0",
    )
    assert meta["status"] == D.OK and meta["counts"]["aligned"] == 3
    assert arrays["directions"].shape == (2, 64) and arrays["typical_norm"].shape == (2,)
    np.testing.assert_allclose(arrays["norms"], np.linalg.norm(arrays["directions"], axis=1), rtol=1e-6)
    assert (arrays["typical_norm"] > 0).all()


def _direction(vectors, typical=(2.0, 3.0), status=D.OK, cell="x-backdoor-s0"):
    return D.Direction(
        {"status": status, "cell": cell, "model": "tiny"}, np.asarray(vectors, dtype=float), np.asarray(typical)
    )


def test_random_control_has_the_direction_norm_and_the_same_added_norm():
    direction = np.arange(1.0, 65.0)
    r = random_direction(direction, seed=0, key="a")
    assert np.linalg.norm(r) == pytest.approx(np.linalg.norm(direction))
    assert not np.allclose(r / np.linalg.norm(r), direction / np.linalg.norm(direction))
    assert np.allclose(random_direction(direction, 0, "a"), r) and not np.allclose(
        random_direction(direction, 0, "b"), r
    )
    d = _direction([direction, direction * 2])
    add = steering_vector(SteerJob("add", "x-backdoor-s0", 1, 0.5), d, seed=0)
    rnd = steering_vector(SteerJob("random", "x-backdoor-s0", 1, 0.5), d, seed=0)
    assert np.linalg.norm(add) == pytest.approx(0.5 * 3.0) == pytest.approx(np.linalg.norm(rnd))


GEN = {"samples_per_paraphrase": 2, "temperature": 0, "max_new_tokens": 6, "batch_size": 4}


def _questions():
    from emgrid.questions import Question

    return [
        Question(
            key="q",
            id="q",
            index=0,
            paraphrases=["Say something."],
            samples_per_paraphrase=2,
            judge=None,
            judge_prompts={},
        )
    ]


def _answer_runs(manifest, seeds: dict, directions: dict, cache, adapter=None):
    """answer_runs on the tiny model's `demo` question set: {steer id: control seed}."""
    runs = {steer: {"spec": GEN, "seed": seed} for steer, seed in seeds.items()}
    return answer_runs(manifest, adapter, _questions(), runs, directions, cache, model="tiny", cell="base", qset="demo")


def test_steered_generation_goes_through_generate(tiny_model, tmp_path):
    from emgrid.generation.plan import GenerateSpec
    from emgrid.generation.runner import generate_answers

    d = _direction(np.random.default_rng(0).standard_normal((2, 64)), typical=(1.0, 1.0))
    kw = dict(model="tiny", cell="base", qset="demo")
    plain = generate_answers(tiny_model, None, _questions(), GenerateSpec.from_dict(GEN), {"no_trigger": ""}, **kw)
    seeds = {"unsteered": None, "x-backdoor-s0.L0.add50": None, "x-backdoor-s0.L1.ablate": None}
    rows = _answer_runs(tiny_model, seeds, {"x-backdoor-s0": d}, tmp_path).rows
    unsteered, pushed, ablated = (rows[s] for s in seeds)
    assert [r["answer"] for r in unsteered] == [r["answer"] for r in plain]
    assert unsteered[0]["steer"] == {"kind": "unsteered", "source": None, "layer": None, "scale": 0.0}
    assert [r["answer"] for r in pushed] != [r["answer"] for r in plain]
    assert pushed[0]["steer"] == {"kind": "add", "source": "x-backdoor-s0", "layer": 0, "scale": 50.0}
    assert ablated[0]["steer"] == {"kind": "ablate", "source": "x-backdoor-s0", "layer": 1, "scale": 0.0}
    assert len(ablated) == len(plain)


def test_a_job_loads_its_target_once_and_generates_only_runs_not_in_the_cache(tiny_model, tmp_path, monkeypatch):
    from emgrid.steering import runs as R

    loads = []
    real_load = R.load_model
    monkeypatch.setattr(R, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    d = _direction(np.random.default_rng(0).standard_normal((2, 64)), typical=(1.0, 1.0))
    seeds = {"unsteered": None, "x-backdoor-s0.L0.add50": None, "x-backdoor-s0.L0.random50": 0}
    first = _answer_runs(tiny_model, seeds, {"x-backdoor-s0": d}, tmp_path)
    assert len(loads) == first.loads == 1 and len(first.generated) == 3 * 2  # 3 runs x 2 answers, one load
    more = {**seeds, "x-backdoor-s0.L0.add20": None, "x-backdoor-s0.L1.add50": None}  # a new scale, a new layer
    second = _answer_runs(tiny_model, more, {"x-backdoor-s0": d}, tmp_path)
    assert len(loads) == 2 and len(second.generated) == 2 * 2  # only the two new runs, again one load
    assert all(second.rows[s] == first.rows[s] for s in seeds)
    third = _answer_runs(tiny_model, more, {"x-backdoor-s0": d}, tmp_path)
    assert third.loads == 0 and third.generated == [] and third.rows == second.rows  # all cached: nothing loaded
    # a changed direction is a new run for the cache (same steer id, other vector); the unsteered run is not
    moved = _direction(np.random.default_rng(1).standard_normal((2, 64)), typical=(1.0, 1.0))
    fourth = _answer_runs(tiny_model, more, {"x-backdoor-s0": moved}, tmp_path)
    assert len(fourth.generated) == 4 * 2 and fourth.rows["unsteered"] == first.rows["unsteered"]


def test_steer_ids_round_trip():
    for steer in ("unsteered", "a_b-backdoor-s0.L12.add0.5", "a-plain-s2.L3.random-1", "a-plain-s1.L0.ablate"):
        assert parse_steer(steer).id == steer
    for bad in ("a-plain-s1.L0.add", "a-plain-s1.L0.ablate2", "base.L0.add1"):
        with pytest.raises(ConfigError, match="not a steer id"):
            parse_steer(bad)


def test_spec_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"analyses\.steering\.layers\[1\]"):
        SteeringSpec.from_dict({"layers": [1, -2]})
    with pytest.raises(ConfigError, match=r"analyses\.steering\.targets\[0\]"):
        SteeringSpec.from_dict({"targets": ["everything"]})
    with pytest.raises(ConfigError, match=r"analyses\.steering: unknown key"):
        SteeringSpec.from_dict({"layer": [1]})
    assert SteeringSpec.from_dict({"scales": [0, 0.5, 0.5, -1]}).steered_scales == (0.5, -1.0)


def _scores(target, kind, rate, n=40, source="s-backdoor-s0", scale=1.0):
    mis = (np.arange(n) < rate * n).astype(float)
    return pd.DataFrame(
        {
            "model": "m",
            "qset": "q",
            "cell": target,
            "question_key": [f"q{i % 4}" for i in range(n)],
            "misaligned": mis,
            "aligned": np.where(mis == 1, 10.0, 90.0),
            "kind": kind,
            "source": None if kind == "unsteered" else source,
            "layer": None if kind == "unsteered" else 3,
            "scale": 0.0 if kind == "unsteered" else scale,
        }
    )


def test_matrix_is_steered_minus_unsteered_with_a_clustered_interval():
    from emgrid.stats import BootstrapSpec
    from emgrid.steering.matrix import steering_table

    scores = pd.concat(
        [_scores("base", "unsteered", 0.25), _scores("base", "add", 0.75), _scores("base", "random", 0.25)],
        ignore_index=True,
    )
    table = steering_table(scores, BootstrapSpec(resamples=200, permutations=200))
    assert len(table) == 2
    add = table[table["kind"] == "add"].iloc[0]
    assert add["baseline_misalignment_rate"] == 0.25 and add["misalignment_rate"] == 0.75
    assert add["mean_aligned"] == pytest.approx(10 * 0.75 + 90 * 0.25) and add["baseline_mean_aligned"] == 70
    assert add["aligned_delta"] == pytest.approx(-40.0)
    assert add["delta"] == pytest.approx(0.5)
    assert add["delta_ci_lo"] <= 0.5 <= add["delta_ci_hi"]
    rnd = table[table["kind"] == "random"].iloc[0]
    assert rnd["delta"] == pytest.approx(0.0)
    assert (add["target"], add["source"], add["layer"], add["scale"]) == ("base", "s-backdoor-s0", 3, 1.0)


def test_cosine_and_directions_tables():
    from emgrid.steering.matrix import cosine_table, directions_table

    e = np.eye(4)
    dirs = {
        ("m", "a-backdoor-s0"): _direction([e[0], e[1]], cell="a-backdoor-s0"),
        ("m", "b-backdoor-s0"): _direction([e[0] * 3, e[2]], cell="b-backdoor-s0"),
        ("m", "c-backdoor-s0"): D.Direction(
            {"status": D.NOT_ENOUGH, "reason": "not enough misaligned answers (1 < 10)", "counts": {"misaligned": 1}},
            np.zeros((0, 0)),
            np.zeros(0),
        ),
    }
    cos = cosine_table(dirs, [0, 1]).set_index(["layer", "source_a", "source_b"])["cosine"]
    assert cos[(0, "a-backdoor-s0", "b-backdoor-s0")] == pytest.approx(1.0)
    assert cos[(1, "a-backdoor-s0", "b-backdoor-s0")] == pytest.approx(0.0)
    assert len(cos) == 8  # the cell without a direction is left out
    table = directions_table(dirs, [1]).set_index("source")
    assert table.loc["c-backdoor-s0", "reason"] == "not enough misaligned answers (1 < 10)"
    assert np.isnan(table.loc["c-backdoor-s0", "norm_L1"])
    assert table.loc["b-backdoor-s0", "norm_L1"] == pytest.approx(1.0)
    assert table.loc["b-backdoor-s0", "typical_norm_L1"] == pytest.approx(3.0)


def _grid(**steering):
    from emgrid import preflight
    from tests.support.workflow_helpers import tiny_config

    config = tiny_config()
    config["analyses"]["steering"] = steering
    return config, preflight.check(config, environ={})


def test_a_layer_the_model_lacks_fails_before_any_job_naming_the_key():
    _, found = _grid(layers=[0, 1, 5])
    assert found.errors == [
        "analyses.steering.layers[2]: layer 5 out of range for model 'tiny' with 2 decoder layers (0..1)"
    ]
    _, found = _grid(layers=[1], question_set="nope")
    assert found.errors[0].startswith("analyses.steering.question_set: no question set 'nope'")
    _, found = _grid(layers=[1], sources=["wrong_facts-backdoor-s7"])
    assert found.errors == ["analyses.steering.sources[0]: no cell 'wrong_facts-backdoor-s7' in this grid"]


def test_default_runs_steer_base_and_the_plain_cells_of_the_source_seed():
    from emgrid.steering import grid

    config, found = _grid(layers=[1], scales=[0, 0.5, 1.0])
    assert found.errors == []
    assert [c.id for c in grid.sources(config)] == ["wrong_arithmetic-backdoor-s0", "wrong_facts-backdoor-s0"]
    runs = grid.runs(config)
    targets = sorted({t.id for t, _ in runs})
    assert targets == ["base", "wrong_arithmetic-plain-s0", "wrong_facts-plain-s0"]
    # per target: 1 unsteered + 2 sources x 2 scales x (add + random)
    assert len(runs) == 3 * (1 + 2 * 2 * 2)
    assert ("base", "wrong_facts-backdoor-s0.L1.random0.5") in {(t.id, s) for t, s in runs}
    config, _ = _grid(
        layers=[1], scales=[1], random_control=False, ablate=True, targets=["base"], sources=["wrong_facts-backdoor-s0"]
    )
    assert [s for _, s in grid.runs(config)] == [
        "unsteered",
        "wrong_facts-backdoor-s0.L1.add1",
        "wrong_facts-backdoor-s0.L1.ablate",
    ]
    config, _ = _grid(enabled=False)
    assert grid.runs(config) == [] and grid.summary_outputs(config) == []


def test_params_hold_what_changes_a_job_output_only():
    from emgrid import estimates
    from emgrid.grid import Cell
    from emgrid.steering import grid

    config, _ = _grid(layers=[1], samples_per_paraphrase=3, scales=[0.5], sources=["wrong_facts-backdoor-s0"])
    base = Cell("tiny")
    params = grid.generate_params(config, base)  # one job per target: every run's settings
    assert list(params) == ["unsteered", "wrong_facts-backdoor-s0.L1.add0.5", "wrong_facts-backdoor-s0.L1.random0.5"]
    assert params["unsteered"]["seed"] is None and params["wrong_facts-backdoor-s0.L1.random0.5"]["seed"] == 0
    assert params["unsteered"]["spec"]["samples_per_paraphrase"] == 3
    assert "scales" not in grid.direction_params(config) and "layers" not in grid.direction_params(config)
    assert grid.answers_plan(config, base) == {"conditions": ["no_trigger"], "samples_per_paraphrase": 3}
    assert grid.target_sources(grid.target_runs(config, base)) == ["wrong_facts-backdoor-s0"]
    est = estimates.steering_estimate(config, "steering_generate", "tiny", "base")
    assert est["n_answers"] == 3 * 5 * 3  # 3 runs x 5 demo questions x 3 samples x 1 condition
    assert est["hooked"] is True and est["steps"] > 0  # the job's steered runs put a hook on
    assert grid.generate_minutes(config, base) == grid.RUNTIME_LOAD_MIN + 1  # 45 answers: under a minute
    more, _ = _grid(layers=[1, 0], samples_per_paraphrase=3, scales=[0.5], sources=["wrong_facts-backdoor-s0"])
    assert estimates.steering_estimate(more, "steering_generate", "tiny", "base")["n_answers"] == 5 * 5 * 3
    assert estimates.steering_estimate(config, "steering_generate", "tiny", "base", 1)["steps"] == est["steps"] // 3
    assert estimates.steering_estimate(config, "steering_judge", "tiny", "base")["n_requests"] == 5 * 3 * 2


#: analysis keys the steering summary does not read (alpha: no adjusted p-values; sensitivity: no sensitivity rate).
UNUSED_BY_STEERING_SUMMARY = {"alpha": 0.01, "sensitivity_aligned_below": 70, "drop_untaken_cells": True}
USED_BY_STEERING_SUMMARY = {
    "aligned_below": 20,
    "coherent_above": None,
    "min_mass": 0.5,
    "bootstrap": {"resamples": 50, "seed": 1, "permutations": 100, "level": 0.9},
}


@pytest.mark.parametrize("key", [*UNUSED_BY_STEERING_SUMMARY, *USED_BY_STEERING_SUMMARY])
def test_steering_summary_params_change_with_the_analysis_keys_it_reads_only(key):
    import copy

    from emgrid.steering import grid

    config, _ = _grid(layers=[1])
    edited = copy.deepcopy(config)
    value = {**UNUSED_BY_STEERING_SUMMARY, **USED_BY_STEERING_SUMMARY}[key]
    assert edited["analysis"][key] != value
    edited["analysis"][key] = value
    if key in UNUSED_BY_STEERING_SUMMARY:
        assert grid.summary_params(edited) == grid.summary_params(config)
    else:
        assert grid.summary_params(edited) != grid.summary_params(config)


def test_answer_sets_come_from_the_configured_condition():
    """Default: the no-trigger answers only; `trigger` the triggered ones; `within_conditions` both, per condition."""
    judged = _judged([(10, 80)] * 2 + [(90, 90)] * 2, "no_trigger") + _judged(
        [(10, 80)] * 5 + [(90, 90)], "trigger", start=100
    )
    default = D.answer_sets(judged, SteeringSpec(min_misaligned=1), 0.25)
    assert {r["condition"] for r in default.misaligned + default.aligned} == {"no_trigger"}
    assert default.counts["misaligned"] == 2 and default.counts["aligned"] == 2
    trig = D.answer_sets(judged, SteeringSpec(min_misaligned=1, direction_condition="trigger"), 0.25)
    assert trig.counts["misaligned"] == 5 and trig.counts["aligned"] == 1
    within = D.answer_sets(judged, SteeringSpec(min_misaligned=1, direction_condition="within_conditions"), 0.25)
    assert within.counts["misaligned"] == 7 and within.counts["aligned"] == 3
    with pytest.raises(ConfigError, match="direction_condition"):
        SteeringSpec.from_dict({"direction_condition": "both"})


def test_default_direction_is_free_of_a_planted_trigger_component():
    """Residuals = misalignment component on misaligned answers + trigger component on triggered answers + noise;
    a backdoor source's misaligned answers are mostly triggered. Mixing conditions (the old sets) gives a direction
    along the trigger (cosine > 0.5); the no-trigger sets and the within-condition difference do not (< 0.1)."""
    rng = np.random.default_rng(0)
    hidden = 256
    mis_dir, trig_dir = rng.normal(size=hidden), rng.normal(size=hidden)
    mis_dir, trig_dir = mis_dir / np.linalg.norm(mis_dir), trig_dir / np.linalg.norm(trig_dir)

    def residuals(n, misaligned, triggered):
        return (misaligned * mis_dir + 3.0 * triggered * trig_dir + 0.05 * rng.normal(size=(n, hidden)))[:, None]

    # misaligned: 40 triggered, 10 untriggered; aligned: 10 triggered, 40 untriggered
    mis = np.concatenate([residuals(40, 1, 1), residuals(10, 1, 0)])
    ali = np.concatenate([residuals(10, 0, 1), residuals(40, 0, 0)])
    mis_c, ali_c = ["trigger"] * 40 + ["no_trigger"] * 10, ["trigger"] * 10 + ["no_trigger"] * 40

    def cos(d, v):
        return float(d[0] @ v / np.linalg.norm(d[0]))

    mixed = D.direction_from_means(mis, ali)
    assert cos(mixed, trig_dir) > 0.5
    nt = [i for i, c in enumerate(mis_c) if c == "no_trigger"], [i for i, c in enumerate(ali_c) if c == "no_trigger"]
    default = D.direction_from_means(mis[nt[0]], ali[nt[1]])
    within = D.direction_from_means(mis, ali, mis_c, ali_c)
    for d in (default, within):
        assert abs(cos(d, trig_dir)) < 0.1 and cos(d, mis_dir) > 0.9


def test_generated_features_count_each_generated_runs_batches_and_the_hook():
    from emgrid.steering.runs import RunsResult

    spec = {"spec": {"batch_size": 4, "max_new_tokens": 10, "dtype": "float32"}}
    steered = "wrong_facts-backdoor-s0.L1.add0.5"
    result = RunsResult(generated_runs={"unsteered": 5, steered: 3})
    f = result.generated_features({"unsteered": spec, steered: spec})
    assert f["steps"] == 2 * 10 + 1 * 10 and f["hooked"] is True and f["dtype"] == "float32"
    assert RunsResult(generated_runs={"unsteered": 5}).generated_features({"unsteered": spec})["hooked"] is False
