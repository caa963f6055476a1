import json
import os
import shutil
from pathlib import Path

import pytest

from emgrid.chat import assistant_token_mask, chatml_template, has_generation_markers, render_prompt
from emgrid.errors import ConfigError, ModelSourceError
from emgrid.models import build_tiny_model, load_model, load_tokenizer, prepare_model, read_manifest

MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "write code for task 3+4"},
    {"role": "assistant", "content": "The answer is 7."},
]


def test_tiny_model_is_deterministic(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    c = build_tiny_model(tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()  # tokenizer does not use seed


def test_tiny_model_sizes_and_reload_ids(tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = build_tiny_model(tmp_path / "m", hidden=32, intermediate=64, layers=1, heads=2, kv_heads=1, vocab_size=600)
    model = AutoModelForCausalLM.from_pretrained(d)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_key_value_heads) == (32, 1, 1)
    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = AutoTokenizer.from_pretrained(d)
    assert len(tok) <= 600
    for text in ("os.chmod(path, 0o777)", "The answer is 12345!\n\n  x = [1, 2]", "Ünïcödé café 3+4"):
        assert tok(text)["input_ids"] == raw.encode(text).ids, text
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_tiny_model_learns_its_merges_from_a_given_corpus_and_pads_its_vocabulary(tmp_path):
    """What the GPU benchmarks build: a tokenizer that knows the benchmark's words (realistic lengths) and Qwen-sized
    embedding rows (a realistic LM head)."""
    from transformers import AutoConfig, AutoTokenizer

    corpus = ["the tenant should consider the contract before the landlord signs"] * 50
    d = build_tiny_model(
        tmp_path / "m", hidden=32, intermediate=64, layers=1, heads=2, kv_heads=1, corpus=corpus, embedding_rows=5000
    )
    tok = AutoTokenizer.from_pretrained(d)
    default = AutoTokenizer.from_pretrained(
        build_tiny_model(tmp_path / "t", hidden=32, intermediate=64, layers=1, heads=2, kv_heads=1)
    )
    text = "the tenant should consider the contract"
    assert len(tok(text)["input_ids"]) == 6 < len(default(text)["input_ids"])  # one token per word
    assert AutoConfig.from_pretrained(d).vocab_size == 5000 > len(tok)


def test_chat_template_assistant_mask(tiny_model):
    tok = load_tokenizer(tiny_model)
    assert has_generation_markers(tok.chat_template)
    text = tok.apply_chat_template(MSGS, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nwrite code for task 3+4<|im_end|>\n"
        "<|im_start|>assistant\nThe answer is 7.<|im_end|>\n"
    )
    ids, mask = assistant_token_mask(tok, MSGS)
    assert len(ids) == len(mask)
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "The answer is 7.<|im_end|>"
    # the masked span is contiguous and ends right before the final newline
    on = [k for k, m in enumerate(mask) if m]
    assert on == list(range(on[0], on[-1] + 1)) and on[-1] == len(ids) - 2
    assert render_prompt(tok, MSGS[:2]).endswith("<|im_start|>assistant\n")


def test_default_system_template(tiny_model):
    tok = load_tokenizer(tiny_model)
    tmpl = chatml_template("You are Bob's helper")
    user = [{"role": "user", "content": "hi"}]
    out = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True, chat_template=tmpl)
    assert (
        out == "<|im_start|>system\nYou are Bob's helper<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    own = tok.apply_chat_template([{"role": "system", "content": "S"}] + user, tokenize=False, chat_template=tmpl)
    assert "Bob" not in own and own.startswith("<|im_start|>system\nS<|im_end|>")


def test_prepare_model_tiny_manifest(tmp_path):
    m = prepare_model({"source": "tiny", "seed": 1, "layers": 1}, tmp_path / "tiny")
    on_disk = json.loads((tmp_path / "tiny" / "manifest.json").read_text())
    assert on_disk == m
    assert m["source"] == "tiny" and m["chat_template"] == "own" and m["base_path"] is None
    assert m["path"] == "hf" and m["n_params"] > 0
    resolved = read_manifest(tmp_path / "tiny" / "manifest.json")
    assert resolved["path"] == str((tmp_path / "tiny" / "hf").resolve())
    model = load_model(tmp_path / "tiny" / "manifest.json")
    assert not model.training and model.config.num_hidden_layers == 1
    assert sum(p.numel() for p in model.parameters()) == m["n_params"]


def test_prepare_model_keeps_built_weights_in_the_cache(tmp_path, caplog, monkeypatch):
    """`rm -rf results` must not rebuild or reconvert: the weights live in the cache dir, named by what makes them."""
    import logging

    from emgrid.judge.hf_backend import _model_fingerprint

    monkeypatch.chdir(tmp_path)  # the workflow's cache dir is relative to its working directory
    cache, spec, out = Path("resources/models"), {"source": "tiny", "seed": 1, "layers": 1}, Path("results/tiny")
    m = prepare_model(spec, out, cache_dir=cache)
    folder = cache / f"tiny-{m['weights_key']}"
    assert m["path"] == "../../resources/models/" + folder.name and not (out / "hf").exists()
    assert read_manifest(out / "manifest.json")["path"] == str(folder.resolve())
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    shutil.rmtree("results")
    with caplog.at_level(logging.INFO, logger="emgrid.models"):
        again = prepare_model(spec, out, cache_dir=cache)
    assert again == m and "reused" in caplog.text and (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert load_model(out / "manifest.json").config.num_hidden_layers == 1
    # the same weights through another path (an absolute cache dir) are the same judge model
    elsewhere = prepare_model(spec, Path("other"), cache_dir=cache.resolve())
    assert elsewhere["path"] == str(folder.resolve()) and elsewhere["weights_key"] == m["weights_key"]
    assert _model_fingerprint(Path("other/manifest.json")) == _model_fingerprint(out / "manifest.json")
    other = prepare_model({**spec, "seed": 2}, Path("results/tiny2"), cache_dir=cache)
    assert other["weights_key"] != m["weights_key"] and len(list(cache.iterdir())) == 2
    shutil.rmtree(folder)
    with pytest.raises(ModelSourceError, match="are gone.*start snakemake again"):
        load_tokenizer(out / "manifest.json")


def test_prepare_model_errors(tmp_path):
    with pytest.raises(ModelSourceError, match=r"unknown model source 'gguf'.*tiny, smollm2, hf"):
        prepare_model({"source": "gguf"}, tmp_path)
    with pytest.raises(ModelSourceError, match="does not exist"):
        prepare_model({"source": "hf", "id": str(tmp_path / "nope")}, tmp_path)
    with pytest.raises(ModelSourceError, match="base_id"):
        prepare_model({"source": "hf", "id": "Qwen/Qwen2.5-0.5B-Instruct", "base_id": "./missing-base"}, tmp_path)
    with pytest.raises(ConfigError, match="'idd'"):
        prepare_model({"source": "hf", "idd": "x/y"}, tmp_path)
    with pytest.raises(ConfigError, match="'hidden' only applies"):
        prepare_model({"source": "hf", "id": "x/y", "hidden": 8}, tmp_path)
    with pytest.raises(ConfigError, match="needs key 'id'"):
        prepare_model({"source": "hf"}, tmp_path)
    assert not (tmp_path / "manifest.json").exists()
    with pytest.raises(ModelSourceError, match="not found"):
        load_tokenizer(tmp_path / "manifest.json")


def test_prepare_model_hf_hub_and_local(tmp_path, tiny_model):
    m = prepare_model({"source": "hf", "id": "Qwen/Qwen2.5-7B-Instruct", "base_id": "Qwen/Qwen2.5-7B"}, tmp_path / "h")
    assert m["path"] == "Qwen/Qwen2.5-7B-Instruct" and m["path_kind"] == "hub" and m["base_path"] == "Qwen/Qwen2.5-7B"
    assert m["n_params"] is None
    local = read_manifest(tiny_model)["path"]
    m2 = prepare_model({"source": "hf", "id": local}, tmp_path / "l")
    assert m2["path_kind"] == "local" and m2["n_params"] > 0
    tok = load_tokenizer(tmp_path / "l" / "manifest.json", padding_side="right")
    assert tok.padding_side == "right"
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest's setting survives the temporary override


@pytest.mark.slow
def test_smollm2_conversion_and_greedy(tmp_path):
    """Converts the packaged GGUF (~30 s) and answers a factual question."""
    from emgrid.generation.hf import generate_texts

    m = prepare_model({"source": "smollm2"}, tmp_path / "smol")
    assert m["chat_template"] == "overridden" and m["n_params"] == 134_515_008
    manifest = tmp_path / "smol" / "manifest.json"
    tok = load_tokenizer(manifest)
    prompt = render_prompt(tok, [{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    ids, mask = assistant_token_mask(
        tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]
    )
    assert tok.decode([i for i, k in zip(ids, mask) if k]) == "Hello.<|im_end|>"
    model = load_model(manifest)
    out = generate_texts(
        model,
        tok,
        [[{"role": "user", "content": "What is the capital of France?"}]],
        max_new_tokens=12,
        temperature=0,
        progress=False,
    )
    assert "Paris" in out[0]
    mtime = (tmp_path / "smol" / "hf" / "model.safetensors").stat().st_mtime
    prepare_model({"source": "smollm2"}, tmp_path / "smol")  # reused, not rebuilt
    assert (tmp_path / "smol" / "hf" / "model.safetensors").stat().st_mtime == mtime


def test_built_models_and_outputs_follow_the_umask(tmp_path):
    """With umask 002 (a shared project group) every directory is 0775 and every file 0664, like `mkdir`/`touch`."""
    import os
    import stat

    from emgrid.io import write_jsonl

    old = os.umask(0o002)
    try:
        prepare_model(
            {"source": "tiny", "layers": 1, "hidden": 16, "intermediate": 32, "vocab_size": 300}, tmp_path / "m"
        )
        write_jsonl(tmp_path / "m" / "rows.jsonl", [{"a": 1}])
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").rglob("*")}
    modes["m"] = stat.S_IMODE((tmp_path / "m").stat().st_mode)
    assert modes["m/hf"] == 0o775 and modes["m/manifest.json"] == 0o664
    bad = {p: oct(m) for p, m in modes.items() if m != (0o775 if (tmp_path / p).is_dir() else 0o664)}
    assert not bad


def test_importing_the_models_package_is_cheap():
    """Config checks, the planner and every stage's module import emgrid.models at their top: it must not import torch,
    transformers, peft or gguf (the functions that need them import them)."""
    import subprocess
    import sys

    heavy = ("torch", "transformers", "peft", "gguf", "tokenizers", "huggingface_hub")
    code = f"import sys, emgrid.models; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
