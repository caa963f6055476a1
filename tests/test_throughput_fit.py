"""The GPU-hours model against real runs: fitted on one set of tiny-model jobs, it must predict another set that
differs in what changes a job's rate (LoRA on all projections, other example counts and lengths, other answer counts,
the steering hook). Issue 23 item 2: one tokens/s per rule estimated the demo's all-linear finetunes 46 % short."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from pathlib import Path

import pytest

from emgrid import throughput
from emgrid.api_finetune import estimate_tokens
from emgrid.chat import example_conversations
from emgrid.finetune import FinetuneSpec, finetune
from emgrid.generation.plan import GenerateSpec
from emgrid.generation.runner import generate_answers
from emgrid.io import write_jsonl
from emgrid.questions import Question
from emgrid.throughput_model import finetune_plan, finetune_record, forward_features, generation_plan

QV = ("q_proj", "v_proj")
ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QUESTIONS = [
    Question(f"q{i}", f"q{i}", i, [f"Tell me about topic {i}.", f"What do you think of {i}?"], None, None, {})
    for i in range(3)
]


@pytest.fixture
def one_thread():
    """Seconds are this process's CPU seconds on one thread: the machine's other load then changes them little, and
    the model sees the same costs it would on an idle machine (a job's wall seconds)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _log(root: Path, rule: str, name: str, text: str) -> None:
    path = root / "results/logs" / rule / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _finetune(root: Path, model: Path, name: str, n: int, modules: tuple, long: int = 1) -> tuple[dict, float]:
    """One real finetune, its throughput line in a log as the workflow's script writes it; returns its plan
    estimate (what `emgrid plan` gives the job from its training file) and its measured seconds."""
    rows = example_conversations(n, seed=n + long)
    for r in rows:
        r["messages"][-1]["content"] = " ".join([r["messages"][-1]["content"]] * long)
    write_jsonl(root / f"{name}.jsonl", rows)
    spec = FinetuneSpec(epochs=1, batch_size=4, grad_accum=1, target_modules=modules, logging_steps=100)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        t0 = time.process_time()
        metrics = finetune(model, root / f"{name}.jsonl", root / name, spec, root / f"{name}.json", 0)
        seconds = time.process_time() - t0
        plan_tokens, features = finetune_record(metrics["spec"], root / f"{name}.jsonl", metrics)
        throughput.record("finetune", seconds, metrics["tokens_seen_this_run"], None, plan_tokens, **features)
    _log(root, "finetune", name, err.getvalue())
    return finetune_plan(metrics["spec"], len(rows), estimate_tokens(rows)), seconds


def _generate(root: Path, model: Path, rule: str, name: str, samples: int, hooked: bool) -> tuple[dict, float]:
    """One real generation job (a steered one adds a vector at layer 1), logged likewise."""
    import torch

    from emgrid.steering.hooks import add_vector

    spec = GenerateSpec(samples_per_paraphrase=samples, max_new_tokens=24, batch_size=8, temperature=1.0)
    steer = (lambda m: add_vector(m, 1, torch.full((m.config.hidden_size,), 0.5))) if hooked else None
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        t0 = time.process_time()
        rows = generate_answers(model, None, QUESTIONS, spec, {"no_trigger": ""}, "tiny", name, "q", steer=steer)
        seconds = time.process_time() - t0
        tokens = throughput.answer_tokens(model, rows)
        features = forward_features(len(rows), spec.batch_size, spec.max_new_tokens, spec.dtype, hooked)
        throughput.record(rule, seconds, tokens, answers=len(rows), **features)
    _log(root, rule, name, err.getvalue())
    return generation_plan(len(rows), dataclasses.asdict(spec), hooked), seconds


@pytest.mark.slow
def test_fitted_model_predicts_runs_it_was_not_fitted_on(tiny_model, tmp_path, one_thread):
    fit_dir, new_dir = tmp_path / "fit", tmp_path / "new"
    _finetune(tmp_path, tiny_model, "warm-up", 4, QV)  # first-call costs (lazy imports, allocator) belong to no job
    for name, n, modules, long in [("qv8", 8, QV, 1), ("qv24", 24, QV, 1), ("all8", 8, ALL, 1)]:
        _finetune(fit_dir, tiny_model, name, n, modules, long)
    for name, n, modules, long in [("qv8x3", 8, QV, 3), ("all20", 20, ALL, 1)]:
        _finetune(fit_dir, tiny_model, name, n, modules, long)
    for rule, name, samples, hooked in [
        ("generate", "g1", 1, False),
        ("generate", "g2", 2, False),
        ("generate", "g5", 5, False),
        ("steering_generate", "s1", 1, False),
        ("steering_generate", "s2", 2, False),
        ("steering_generate", "s2h", 2, True),
        ("steering_generate", "s5h", 5, True),
    ]:
        _generate(fit_dir, tiny_model, rule, name, samples, hooked)
    planned = [  # another domain's all-linear override, other counts and lengths, other answer counts
        ("finetune", *_finetune(new_dir, tiny_model, "all24", 24, ALL)),
        ("finetune", *_finetune(new_dir, tiny_model, "qv12x3", 12, QV, 3)),
        ("finetune", *_finetune(new_dir, tiny_model, "all8x2", 8, ALL, 2)),
        ("generate", *_generate(new_dir, tiny_model, "generate", "g3", 3, False)),
        ("generate", *_generate(new_dir, tiny_model, "generate", "g7", 7, False)),
        ("steering_generate", *_generate(new_dir, tiny_model, "steering_generate", "s4", 4, False)),
        ("steering_generate", *_generate(new_dir, tiny_model, "steering_generate", "s3h", 3, True)),
    ]
    cal = throughput.fit(throughput.collect_runs(fit_dir), "fit")
    one_rate = throughput.fit(  # the old model: the same runs without their features
        [throughput.Run(r.rule, r.device, r.seconds, r.tokens, r.answers) for r in throughput.collect_runs(fit_dir)],
        "one rate",
    )
    errors, old_errors = {}, {}
    for rule in ("finetune", "generate", "steering_generate"):
        jobs = [(est, s) for r, est, s in planned if r == rule]
        recorded = sum(s for _, s in jobs)
        for table, c in ((errors, cal), (old_errors, one_rate)):
            rate = c.rate(rule, "cpu", "float32")
            table[rule] = sum(throughput.rate_seconds(rule, est, rate) for est, _ in jobs) / recorded - 1
    print(
        "model:",
        {r: f"{e:+.0%}" for r, e in errors.items()},
        "one rate:",
        {r: f"{e:+.0%}" for r, e in old_errors.items()},
    )
    assert all(abs(e) <= 0.25 for e in errors.values()), errors
