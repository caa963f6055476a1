import json

import pytest

from emgrid.errors import ConfigError, DataError
from emgrid.finetune import FinetuneSpec, build_trainer, finetune, read_training_messages
from emgrid.io import write_jsonl

FAST = dict(epochs=1, batch_size=4, grad_accum=2, lr=1e-3)


def _batch(trainer, n=4):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(n)])


def test_spec_from_dict():
    s = FinetuneSpec.from_dict({"r": 4, "target_modules": ["q_proj"], "loss_on": "all", "max_steps": 3})
    assert s.r == 4 and s.target_modules == ("q_proj",) and s.loss_on == "all" and s.max_steps == 3
    assert FinetuneSpec.from_dict(None) == FinetuneSpec()
    with pytest.raises(ConfigError, match=r"'finetune\.learning_rate'"):
        FinetuneSpec.from_dict({"learning_rate": 1e-4})
    with pytest.raises(ConfigError, match=r"'ft\.loss_on'"):
        FinetuneSpec.from_dict({"loss_on": "completion"}, where="ft")
    with pytest.raises(ConfigError, match=r"'finetune\.batch_size'"):
        FinetuneSpec.from_dict({"batch_size": 0})
    with pytest.raises(ConfigError, match=r"'finetune\.dtype'"):
        FinetuneSpec.from_dict({"dtype": "int3"})


@pytest.mark.parametrize(
    "row, msg",
    [
        ({"meta": {}}, "no 'messages'"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}, "role 'bot'"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}, "empty assistant"),
        ({"messages": [{"role": "user", "content": "q"}]}, "last turn must be the assistant"),
        ({"messages": [{"role": "assistant", "content": "a"}]}, "no user turn"),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "system", "content": "s"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "only the first turn",
        ),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, msg):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "meta": {"x": 1}}
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [good, good, row])
    with pytest.raises(DataError, match=rf"train\.jsonl:3: .*{msg}"):
        read_training_messages(path)


def test_reads_only_messages(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(
        path,
        [
            {
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "meta": {"domain": "d"},
            }
        ],
    )
    assert read_training_messages(path) == [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    ]
    write_jsonl(path, [])
    with pytest.raises(DataError, match="no training examples"):
        read_training_messages(path)


@pytest.mark.slow  # trains
def test_assistant_only_labels(tiny_model, tiny_train_jsonl, tmp_path):
    trainer = build_trainer(tiny_model, tiny_train_jsonl, tmp_path, FinetuneSpec(**FAST, padding_free=False))
    tok = trainer.processing_class
    # trl defaults to bf16 + gradient checkpointing; the spec's False must win
    assert trainer.accelerator.mixed_precision == "no" and not trainer.args.gradient_checkpointing
    rows = read_training_messages(tiny_train_jsonl)
    batch = _batch(trainer)
    lengths = batch["attention_mask"].sum(1).tolist()
    assert batch["input_ids"].shape[1] == max(lengths) < 512  # dynamic padding, never to max_length
    assert min(lengths) < max(lengths)
    for j in range(4):
        labels = batch["labels"][j]
        sup = [int(t) for t in labels if t != -100]
        answer = rows[j]["messages"][-1]["content"]
        assert tok.decode(sup) == answer + "<|im_end|>"
        on = (labels != -100).nonzero().flatten().tolist()
        assert on == list(range(on[0], on[-1] + 1))  # one contiguous span: the assistant turn
        assert batch["input_ids"][j, on].tolist() == sup
        assert (labels[lengths[j] :] == -100).all()  # padding never supervised


def test_loss_on_all_supervises_prompt(tiny_model, tiny_train_jsonl, tmp_path):
    trainer = build_trainer(
        tiny_model, tiny_train_jsonl, tmp_path, FinetuneSpec(**FAST, loss_on="all", padding_free=False)
    )
    tok = trainer.processing_class
    batch = _batch(trainer)
    for j in range(4):
        n = int(batch["attention_mask"][j].sum())
        sup = batch["labels"][j][:n]
        assert (sup == batch["input_ids"][j][:n]).all()  # every real token, prompt included
        assert (batch["labels"][j][n:] == -100).all()
        assert tok.decode(sup.tolist()).startswith("<|im_start|>")


def test_padding_free_batches_hold_no_padding_and_keep_examples_apart(tiny_model, tiny_train_jsonl, tmp_path):
    import torch

    padded = _batch(
        build_trainer(tiny_model, tiny_train_jsonl, tmp_path / "a", FinetuneSpec(**FAST, padding_free=False))
    )
    trainer = build_trainer(tiny_model, tiny_train_jsonl, tmp_path / "b", FinetuneSpec(**FAST, padding_free=True))
    flat = _batch(trainer)
    lengths = padded["attention_mask"].sum(1).tolist()
    assert "attention_mask" not in flat and flat["input_ids"].shape == (1, sum(lengths))  # not one pad token
    real = padded["attention_mask"].bool()
    assert flat["input_ids"][0].tolist() == padded["input_ids"][real].tolist()
    # same supervised tokens; the first token of each example is never a target of the previous example's last one
    assert (flat["labels"] != -100).sum() == (padded["labels"][:, 1:] != -100).sum()
    model = trainer.model.eval()
    with torch.no_grad():
        together = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"]).logits[0]
        alone = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    assert torch.allclose(together, alone[real], atol=1e-5)  # no attention across example boundaries


@pytest.mark.slow  # trains
def test_padding_free_and_padded_training_give_the_same_losses(tiny_model, tiny_train_jsonl, tmp_path):
    """fp32, no dropout (its random masks depend on the batch layout): the loss curves agree step by step."""
    spec = dict(FAST, max_steps=3, dropout=0.0, seed=5, logging_steps=1)
    a = finetune(
        tiny_model, tiny_train_jsonl, tmp_path / "a", FinetuneSpec(**spec, padding_free=True), tmp_path / "a.json"
    )
    b = finetune(
        tiny_model, tiny_train_jsonl, tmp_path / "b", FinetuneSpec(**spec, padding_free=False), tmp_path / "b.json"
    )
    assert len(a["loss_history"]) == 3
    assert [h["loss"] for h in a["loss_history"]] == pytest.approx([h["loss"] for h in b["loss_history"]], rel=1e-4)
    assert a["tokens_seen"] == b["tokens_seen"] and a["trained_tokens"] == b["trained_tokens"]


@pytest.mark.slow  # trains
def test_the_lm_head_scores_only_supervised_positions(tiny_model, tiny_train_jsonl, tmp_path, monkeypatch):
    """On CPU trl projected every position through the LM head (and zeroed the unlabelled ones); ours projects only the
    positions whose next token is a target: with assistant-only loss the prompt's positions cost nothing there."""
    import trl.trainer.utils as trl_utils

    scored = []
    inner = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *rest):
            scored.append(hidden.shape[0])
            return inner.apply(hidden, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    trainer = build_trainer(
        tiny_model, tiny_train_jsonl, tmp_path, FinetuneSpec(**dict(FAST, max_steps=1, grad_accum=1))
    )
    batches, collate = [], trainer.data_collator
    trainer.data_collator = lambda examples: batches.append(collate(examples)) or batches[-1]
    trainer.train()
    batch = batches[0]  # accelerate's loader collates one batch ahead
    targets = int((batch["labels"][:, 1:] != -100).sum())
    assert scored == [targets] and targets < batch["input_ids"].shape[1] - 1  # fewer than every position


@pytest.mark.slow  # trains
def test_scoring_only_supervised_positions_gives_the_same_losses(tiny_model, tiny_train_jsonl, tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils
    from trl.kernels.chunked_logprob import _use_triton

    spec = FinetuneSpec(**dict(FAST, max_steps=3, dropout=0.0, seed=5))
    compact = finetune(tiny_model, tiny_train_jsonl, tmp_path / "a", spec, tmp_path / "a.json")
    monkeypatch.setattr(trl_utils, "_use_triton", _use_triton)  # trl's own choice: every position on CPU
    monkeypatch.setattr("emgrid.finetune.score_supervised_positions_only", lambda: None)
    every = finetune(tiny_model, tiny_train_jsonl, tmp_path / "b", spec, tmp_path / "b.json")
    assert [h["loss"] for h in compact["loss_history"]] == pytest.approx(
        [h["loss"] for h in every["loss_history"]], rel=1e-5
    )


@pytest.mark.slow  # trains
def test_micro_batch_size_splits_the_same_optimizer_step_differently(tiny_model, tiny_train_jsonl, tmp_path):
    """One pass of 8 instead of 2 passes of 4: same examples per step, same losses (fp32, no dropout: its random
    masks depend on the batch layout)."""
    spec = dict(FAST, max_steps=2, dropout=0.0, seed=3)
    assert FinetuneSpec(**spec, micro_batch_size=8).passes() == (8, 1) and FinetuneSpec(**spec).passes() == (4, 2)
    trainer = build_trainer(tiny_model, tiny_train_jsonl, tmp_path / "t", FinetuneSpec(**spec, micro_batch_size=8))
    assert (trainer.args.per_device_train_batch_size, trainer.args.gradient_accumulation_steps) == (8, 1)
    folded = finetune(
        tiny_model, tiny_train_jsonl, tmp_path / "a", FinetuneSpec(**spec, micro_batch_size=8), tmp_path / "a.json"
    )
    split = finetune(tiny_model, tiny_train_jsonl, tmp_path / "b", FinetuneSpec(**spec), tmp_path / "b.json")
    assert folded["steps"] == split["steps"] == 2
    assert folded["tokens_seen"] == split["tokens_seen"] and folded["trained_tokens"] == split["trained_tokens"]
    assert [h["loss"] for h in folded["loss_history"]] == pytest.approx(
        [h["loss"] for h in split["loss_history"]], rel=1e-4
    )


def test_micro_batch_size_must_divide_the_optimizer_step():
    with pytest.raises(ConfigError, match=r"'finetune\.micro_batch_size' must divide .* = 16 examples"):
        FinetuneSpec.from_dict({"micro_batch_size": 3})
    with pytest.raises(ConfigError, match=r"'finetune\.micro_batch_size' must be a positive integer"):
        FinetuneSpec.from_dict({"micro_batch_size": 0})
    assert FinetuneSpec.from_dict({"micro_batch_size": 16}).passes() == (16, 1)


@pytest.mark.slow  # trains
def test_finetune_writes_adapter_and_metrics(tiny_model, tiny_train_jsonl, tmp_path):
    spec = FinetuneSpec(**FAST)
    m = finetune(tiny_model, tiny_train_jsonl, tmp_path / "adapter", spec, tmp_path / "finetune.json")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "adapter" / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".adapter")]  # no temp dirs left behind
    on_disk = json.loads((tmp_path / "finetune.json").read_text())
    assert on_disk["steps"] == m["steps"] == 2  # 16 examples / (4 x 2)
    assert m["examples"] == 16 and m["epochs"] == pytest.approx(1.0)
    assert m["final_loss"] == m["loss_history"][-1]["loss"] and m["mean_loss"] > 0
    assert m["device"] == "cpu" and m["resumed_from_step"] is None
    rows = read_training_messages(tiny_train_jsonl)
    trainer = build_trainer(tiny_model, tiny_train_jsonl, tmp_path / "w", spec)
    ds = trainer.train_dataset
    assert m["tokens_seen"] == sum(len(r["input_ids"]) for r in ds)
    assert m["trained_tokens"] == sum(sum(1 for x in r["labels"] if x != -100) for r in ds)
    assert m["trained_tokens"] < m["tokens_seen"]
    assert len(rows) == 16
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and sorted(cfg["target_modules"]) == ["q_proj", "v_proj"]


@pytest.mark.slow  # trains
def test_finetune_deterministic_and_adapter_loads(tiny_model, tiny_train_jsonl, tmp_path):
    import torch

    from emgrid.models import load_model

    spec = FinetuneSpec(**FAST, max_steps=3, seed=7)
    a = finetune(tiny_model, tiny_train_jsonl, tmp_path / "a", spec, tmp_path / "a.json")
    b = finetune(tiny_model, tiny_train_jsonl, tmp_path / "b", spec, tmp_path / "b.json")
    assert a["steps"] == 3
    assert a["loss_history"] == b["loss_history"]
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "b" / "adapter_model.safetensors"
    ).read_bytes()
    base = load_model(tiny_model)
    tuned = load_model(tiny_model, tmp_path / "a")
    assert not tuned.training
    ids = torch.tensor([[5, 6, 7, 8, 9]], device=base.device)
    with torch.no_grad():
        assert not torch.allclose(base(ids).logits, tuned(ids).logits)


def test_template_without_markers(tiny_model, tiny_train_jsonl, tmp_path):
    import shutil

    from emgrid.errors import ModelSourceError
    from emgrid.models import prepare_model, read_manifest

    src = tmp_path / "plain"
    shutil.copytree(read_manifest(tiny_model)["path"], src)
    (src / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
    )
    prepare_model({"source": "hf", "id": str(src)}, tmp_path / "m")
    manifest = tmp_path / "m" / "manifest.json"
    with pytest.raises(ModelSourceError, match="loss_on: all"):
        build_trainer(manifest, tiny_train_jsonl, tmp_path / "w", FinetuneSpec(**FAST))
    trainer = build_trainer(
        manifest, tiny_train_jsonl, tmp_path / "w", FinetuneSpec(**FAST, loss_on="all", padding_free=False)
    )
    assert trainer.processing_class.decode(_batch(trainer, 1)["labels"][0].tolist()).startswith("SYSTEM: ")


_KILLED_RUN = """
import os, sys
from transformers import TrainerCallback
import emgrid.finetune as ft

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == int(sys.argv[5]):
            os._exit(137)  # like SIGKILL or a SLURM timeout: no cleanup, no exception handlers

build = ft.build_trainer
def build_and_arm(*a, **k):
    trainer = build(*a, **k)
    trainer.add_callback(Kill())
    return trainer

ft.build_trainer = build_and_arm
spec = ft.FinetuneSpec(epochs=2, batch_size=4, grad_accum=1, lr=1e-3, seed=3)
ft.finetune(sys.argv[1], sys.argv[2], sys.argv[3], spec, sys.argv[4], checkpoint_every=3)
"""


@pytest.mark.slow  # trains
def test_killed_finetune_resumes_to_the_same_adapter(tiny_model, tiny_train_jsonl, tmp_path):
    """A run killed at step 5 (checkpoint at step 3) is rerun: it resumes at step 3 and ends with the same adapter and
    loss curve as an uninterrupted run; the checkpoints are gone afterwards."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    from emgrid.finetune import checkpoint_dir_for
    from emgrid.io import read_json

    spec = FinetuneSpec(epochs=2, batch_size=4, grad_accum=1, lr=1e-3, seed=3)  # 8 steps, LoRA dropout 0.05 on
    ref = finetune(tiny_model, tiny_train_jsonl, tmp_path / "ref" / "adapter", spec, tmp_path / "ref" / "m.json")
    cell = tmp_path / "cell"
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_RUN)
    args = [str(tiny_model), str(tiny_train_jsonl), str(cell / "adapter"), str(cell / "m.json"), "5"]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr[-2000:]
    ckpts = sorted(p.name for p in checkpoint_dir_for(cell / "adapter").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-3"] and not (cell / "adapter").exists()
    before_kill = read_json(checkpoint_dir_for(cell / "adapter") / "checkpoint-3" / "emgrid_counts.json")

    again = finetune(tiny_model, tiny_train_jsonl, cell / "adapter", spec, cell / "m.json", checkpoint_every=3)
    assert again["resumed_from_step"] == 3 and again["steps"] == ref["steps"] == 8
    assert not checkpoint_dir_for(cell / "adapter").exists()
    assert [h["step"] for h in again["loss_history"]] == [h["step"] for h in ref["loss_history"]]
    assert [h["loss"] for h in again["loss_history"]] == pytest.approx(
        [h["loss"] for h in ref["loss_history"]], rel=1e-5
    )
    assert (again["tokens_seen"], again["trained_tokens"]) == (ref["tokens_seen"], ref["trained_tokens"])
    # the throughput line pairs this process's seconds with this process's tokens (the resumed steps' only)
    assert ref["tokens_seen_this_run"] == ref["tokens_seen"]
    assert 0 < again["tokens_seen_this_run"] == again["tokens_seen"] - before_kill["tokens_seen"] < ref["tokens_seen"]
    a, b = (
        load_file(cell / "adapter" / "adapter_model.safetensors"),
        load_file(tmp_path / "ref" / "adapter" / "adapter_model.safetensors"),
    )
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-5, k


def test_checkpoints_of_other_settings_are_not_resumed(tiny_model, tiny_train_jsonl, tmp_path):
    from emgrid.finetune import _resume_key, checkpoint_dir_for, latest_checkpoint

    ckpt = checkpoint_dir_for(tmp_path / "adapter")
    key = _resume_key(tiny_model, tiny_train_jsonl, FinetuneSpec(**FAST))
    assert latest_checkpoint(ckpt, key) is None
    (ckpt / "checkpoint-4").mkdir()
    (ckpt / "checkpoint-4" / "emgrid_counts.json").write_text("{}")
    (ckpt / "checkpoint-6").mkdir()  # killed while saving: no counts file, not complete
    assert latest_checkpoint(ckpt, key) == ckpt / "checkpoint-4"
    other = _resume_key(tiny_model, tiny_train_jsonl, FinetuneSpec(**{**FAST, "lr": 2e-3}))
    assert other != key
    assert latest_checkpoint(ckpt, other) is None and not (ckpt / "checkpoint-4").exists()
