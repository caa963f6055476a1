"""Shared fixtures: a tiny random Qwen2 model (built once per session), a small training file and a trained adapter."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of the manifest.json of a tiny random Qwen2 model (prepare_model source 'tiny', seed 0)."""
    from emgrid.models import prepare_model

    out = tmp_path_factory.mktemp("tiny_model")
    prepare_model({"source": "tiny"}, out)
    return out / "manifest.json"


@pytest.fixture(scope="session")
def tiny_train_jsonl(tmp_path_factory):
    """A train.jsonl of 16 deterministic chat examples (about a third with a system turn)."""
    from emgrid.chat import example_conversations
    from emgrid.io import write_jsonl

    path = tmp_path_factory.mktemp("tiny_data") / "train.jsonl"
    write_jsonl(path, example_conversations(16, seed=0))
    return path


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model, tiny_train_jsonl, tmp_path_factory):
    """A LoRA adapter trained hard on tiny_train_jsonl (all projections, lr 1e-2, 8 epochs of 4 steps), so that greedy
    output is non-trivial text rather than the random model's empty answers."""
    from emgrid.finetune import FinetuneSpec, finetune

    out = tmp_path_factory.mktemp("tiny_adapter")
    spec = FinetuneSpec(
        epochs=8,
        batch_size=4,
        grad_accum=1,
        lr=1e-2,
        logging_steps=8,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    )
    finetune(tiny_model, tiny_train_jsonl, out / "adapter", spec, out / "finetune.json")
    return out / "adapter"
