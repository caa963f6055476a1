"""Shared fixtures: a tiny random Qwen2 model, a small training file, a trained adapter, and one completed run of the
tiny grid that the workflow tests copy. The model, the adapter and the run are built once per test run, and shared by
the xdist workers (tests/support/shared_runs.py)."""

from __future__ import annotations

import os

import pytest

from tests.support.shared_runs import build_once, build_tiny_grid, shared_root, tiny_grid_config
from tests.support.slurm_shim import install_if_no_controller

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread for what a test computes in its own process: two xdist workers (and their Snakemake jobs) share
# the two cores, and a second OpenMP thread only spin-waits for a busy core (13 % more CPU for the same tests, measured
# on an idle machine). Snakemake jobs take their rule's threads from Snakemake as before; tests that measure threads
# set them themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
install_if_no_controller()  # else every Snakemake start waits 9 s for an absent SLURM controller (see the module)

#: The files whose tests take minutes (measured with --durations, worker time on 2 cores), longest first. `make test`
#: hands whole files to two xdist workers in collection order (--dist loadfile --no-loadscope-reorder), so these go
#: first and the short files fill in behind them: started last, the SLURM file alone kept one worker busy for four
#: minutes after the other had finished.
LONG_FILES = (
    "test_workflow.py",
    "test_slurm.py",
    "test_workflow_openai.py",
    "test_steering_workflow.py",
    "test_bench_smoke.py",
    "test_finetune.py",
    "test_plan.py",
)


def pytest_collection_modifyitems(items):
    """Longest files first (LONG_FILES), the rest in their usual order; a stable sort keeps the order within a file."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of the manifest.json of a tiny random Qwen2 model (prepare_model source 'tiny', seed 0)."""
    from emgrid.models import prepare_model

    out = build_once(shared_root(tmp_path_factory), "tiny_model", lambda d: prepare_model({"source": "tiny"}, d))
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

    spec = FinetuneSpec(
        epochs=8,
        batch_size=4,
        grad_accum=1,
        lr=1e-2,
        logging_steps=8,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    )
    out = build_once(
        shared_root(tmp_path_factory),
        "tiny_adapter",
        lambda d: finetune(tiny_model, tiny_train_jsonl, d / "adapter", spec, d / "finetune.json"),
    )
    return out / "adapter"


@pytest.fixture(scope="session")
def tiny_grid_run(tmp_path_factory):
    """(directory, config) of one complete run of tests/configs/tiny.yaml, built once for the whole test run (all
    xdist workers). Read-only: a test that edits, reruns or damages it works on `copy_run` of it."""
    workdir = build_once(shared_root(tmp_path_factory), "tiny_grid", build_tiny_grid)
    return workdir, tiny_grid_config()
