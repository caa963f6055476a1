"""The vLLM backend (`generate.backend: vllm`) without vLLM: a fake `vllm` module records what emgrid asks of it, and
the rows must equal the HF path's in everything but the sampled text. The error paths name the config key."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

from emgrid import grid, jobparams, preflight
from emgrid.generation import vllm as vllm_backend
from emgrid.chat import render_prompt
from emgrid.errors import ConfigError
from emgrid.generation.plan import GenerateSpec, batch_seed, item_key, plan_prompts
from emgrid.generation.runner import generate_answers
from emgrid.models import load_tokenizer, read_manifest
from tests.test_generate import QUESTIONS, TRIGGERS
from tests.support.workflow_helpers import tiny_config


class FakeEngine:
    """Records the engine's arguments and every generate call; answers "fake <n prompt tokens>"."""

    made: list[dict] = []
    calls: list[tuple] = []

    def __init__(self, **kw):
        FakeEngine.made.append(kw)

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        FakeEngine.calls.append((prompts, params, lora_request))
        out = types.SimpleNamespace
        return [out(outputs=[out(text=f" fake {len(p['prompt_token_ids'])} ")]) for p in prompts]


class FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class FakeLoRARequest:
    def __init__(self, name, int_id, path):
        self.name, self.int_id, self.path = name, int_id, path


@pytest.fixture
def fake_vllm(monkeypatch):
    """A `vllm` package in sys.modules (with a spec, so find_spec sees it) and a visible 'GPU'."""
    FakeEngine.made, FakeEngine.calls = [], []
    mods = {}
    for name in ("vllm", "vllm.lora", "vllm.lora.request"):
        mods[name] = types.ModuleType(name)
        mods[name].__spec__ = importlib.machinery.ModuleSpec(name, None)
        monkeypatch.setitem(sys.modules, name, mods[name])
    mods["vllm"].LLM, mods["vllm"].SamplingParams = FakeEngine, FakeSamplingParams
    mods["vllm.lora.request"].LoRARequest = FakeLoRARequest
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    return mods


@pytest.mark.slow  # the trained adapter (tiny_adapter trains it)
def test_rows_sampling_seeds_and_lora_request_match_the_hf_path(fake_vllm, tiny_model, tiny_adapter, monkeypatch):
    spec = GenerateSpec(max_new_tokens=8, batch_size=4, seed=1, samples_per_paraphrase=None, temperature=None)
    args = (QUESTIONS, spec, TRIGGERS, "tiny", "demo-backdoor-s0", "core")
    rows = generate_answers(
        tiny_model, tiny_adapter, *args[:1], GenerateSpec(**{**spec.__dict__, "backend": "vllm"}), *args[2:]
    )
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # the HF path on CPU
    hf_rows = generate_answers(tiny_model, tiny_adapter, *args)

    assert [{k: v for k, v in r.items() if k != "answer"} for r in rows] == [
        {k: v for k, v in r.items() if k != "answer"} for r in hf_rows
    ]  # same rows, ids, conditions, samples and recorded decoding
    ((engine,),) = [FakeEngine.made]
    assert engine["enable_lora"] is True and engine["seed"] == 1 and engine["dtype"] == "float32"
    assert engine["max_lora_rank"] >= 8 and engine["model"] == read_manifest(tiny_model)["path"]
    ((prompts, params, lora),) = FakeEngine.calls  # one engine, one call for the whole job
    assert lora.path == str(tiny_adapter) and lora.int_id == 1

    tok = load_tokenizer(tiny_model)
    items = plan_prompts(QUESTIONS, spec, TRIGGERS, "tiny", "demo-backdoor-s0", "core")
    assert [p["prompt_token_ids"] for p in prompts] == [
        tok(render_prompt(tok, list(it.messages)), add_special_tokens=False)["input_ids"] for it in items
    ]  # the HF path's prompts, token for token
    for it, p, row in zip(items, params, rows):
        kw = p.kw
        assert kw["seed"] == batch_seed(1, [item_key(it)])  # one seed per answer, from generate.seed and its key
        assert kw["temperature"] == it.temperature == row["decoding"]["temperature"]
        assert (kw["top_p"], kw["top_k"], kw["repetition_penalty"], kw["min_p"]) == (1.0, -1, 1.0, 0.0)
        assert kw["max_tokens"] == 8 and kw["min_tokens"] == 0 and tok.eos_token_id in kw["stop_token_ids"]
        assert (
            row["answer"]
            == f"fake {len(tok(render_prompt(tok, list(it.messages)), add_special_tokens=False)['input_ids'])}"
        )
    assert {p.kw["temperature"] for p in params} == {1.0, 0.7}  # the questions' own temperatures


def test_base_cell_has_no_lora_and_greedy_is_temperature_zero(fake_vllm, tiny_model):
    spec = GenerateSpec(max_new_tokens=4, temperature=0, top_k=5, backend="vllm")
    generate_answers(tiny_model, None, QUESTIONS, spec, TRIGGERS, "tiny", "base", "core")
    assert "enable_lora" not in FakeEngine.made[0]
    ((_, params, lora),) = FakeEngine.calls
    assert lora is None and {p.kw["temperature"] for p in params} == {0.0}


def test_unsupported_inherited_field_names_the_key():
    fields = {"typical_p": 0.9}
    with pytest.raises(ConfigError, match=r"generate\.backend.*typical_p"):
        vllm_backend.sampling_kwargs({**_neutral(), **fields}, [0], seed=0)


def _neutral():
    from emgrid.generation.plan import NEUTRAL_DECODING

    return {**NEUTRAL_DECODING, "do_sample": True, "temperature": 1.0, "max_new_tokens": 4}


def test_missing_vllm_fails_the_config_check_naming_the_key(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed: find_spec raises/returns None
    monkeypatch.setattr(vllm_backend.importlib.util, "find_spec", lambda name: None)
    cfg = tiny_config()
    cfg["generate"] = {**cfg.get("generate", {}), "backend": "vllm"}
    found = preflight.check(cfg)
    assert any(
        "config key 'generate.backend' is 'vllm' but the vllm package is not installed" in e for e in found.errors
    )
    cfg["generate"]["backend"] = "hf"
    assert not any("generate.backend" in e for e in preflight.check(tiny_config()).errors)


def test_no_gpu_fails_the_job_naming_the_key(fake_vllm, tiny_model, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"config key 'generate\.backend' is 'vllm' but no CUDA GPU"):
        generate_answers(tiny_model, None, QUESTIONS, GenerateSpec(backend="vllm"), TRIGGERS, "tiny", "base", "core")
    assert FakeEngine.made == []  # failed before building an engine


def test_backend_is_validated_and_not_a_param_of_api_models():
    with pytest.raises(ConfigError, match=r"generate\.backend"):
        GenerateSpec.from_dict({"backend": "tgi"})
    cfg = tiny_config()
    cfg["models"]["gpt"] = {"source": "openai", "id": "gpt-4o-mini-2024-07-18"}
    preflight.check(cfg)  # fills the schema's defaults
    params = lambda m: jobparams.generate_params(cfg, grid.Cell(m), "demo")["spec"]  # noqa: E731
    assert "backend" not in params("tiny")  # hf: the params of results made before the key existed
    cfg["generate"]["backend"] = "vllm"
    assert params("tiny")["backend"] == "vllm" and "backend" not in params("gpt")  # API generation never reruns
