"""LoRA finetuning of one cell with trl's SFTTrainer.

Why trl and not the study's plain Trainer: it computes no padding (each batch's examples are concatenated into one row,
kept apart by their position ids; many times faster than padding every example to 512 tokens, see
bench/bench_finetune.py) and masks the loss to assistant tokens from the chat template's
`{% generation %}` markers. `loss_on="all"` reproduces the study's effective full-sequence loss (docs/method.md, Finetuning).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgrid.chat import validate_messages
from emgrid.errors import ConfigError, DataError, ModelSourceError, reject_unknown_keys
from emgrid.io import iter_jsonl, read_json, write_json
from emgrid.models import (
    DTYPE_NAMES,
    default_device,
    device_name,
    load_tokenizer,
    offline_if_local,
    read_manifest,
    resolve_dtype,
    source_args,
)
from emgrid.models.cache import replacing_dir


@dataclass
class FinetuneSpec:
    """LoRA + optimiser settings; defaults are the study's (r 8, alpha 16, q/v proj, lr 2e-4, 3 epochs, 4x4 batch)."""

    r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 2e-4
    epochs: float = 3
    batch_size: int = 4
    grad_accum: int = 4
    max_length: int = 512
    seed: int = 42
    loss_on: str = "assistant"
    warmup_steps: int = 0
    max_steps: int | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    dtype: str = "float32"
    padding_free: bool = True
    micro_batch_size: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "finetune") -> "FinetuneSpec":
        """Build from a config mapping; unknown keys and bad values raise ConfigError naming `where.key`."""
        d = dict(d or {})
        reject_unknown_keys(d, cls, where)
        if "target_modules" in d:
            tm = d["target_modules"]
            if isinstance(tm, str):
                tm = [tm]
            if not isinstance(tm, (list, tuple)) or not tm or not all(isinstance(x, str) for x in tm):
                raise ConfigError(f"config key '{where}.target_modules' must be a non-empty list of module names")
            d["target_modules"] = tuple(tm)
        spec = cls(**d)
        spec.validate(where)
        return spec

    def validate(self, where: str = "finetune") -> None:
        def bad(key, msg):
            raise ConfigError(f"config key '{where}.{key}' {msg}, got {getattr(self, key)!r}")

        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or self.alpha <= 0:
            bad("alpha", "must be a positive number")
        for key in ("r", "batch_size", "grad_accum", "max_length", "logging_steps"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(key, "must be a positive integer")
        for key in ("seed", "warmup_steps"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(key, "must be a non-negative integer")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            bad("max_steps", "must be a positive integer or null")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            bad("lr", "must be a positive number")
        if not isinstance(self.epochs, (int, float)) or self.epochs <= 0:
            bad("epochs", "must be a positive number")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            bad("dropout", "must be in [0, 1)")
        if self.loss_on not in ("assistant", "all"):
            bad("loss_on", "must be 'assistant' or 'all'")
        for key in ("bf16", "gradient_checkpointing", "padding_free"):
            if not isinstance(getattr(self, key), bool):
                bad(key, "must be true or false")
        if self.dtype not in DTYPE_NAMES:
            bad("dtype", f"must be one of {', '.join(DTYPE_NAMES)}")
        micro = self.micro_batch_size
        if micro is not None and (not isinstance(micro, int) or isinstance(micro, bool) or micro < 1):
            bad("micro_batch_size", "must be a positive integer or null")
        if micro is not None and (self.batch_size * self.grad_accum) % micro:
            bad(
                "micro_batch_size",
                f"must divide the optimizer step's batch_size x grad_accum = {self.batch_size * self.grad_accum} "
                "examples",
            )

    def passes(self) -> tuple[int, int]:
        """(examples per forward pass, passes per optimizer step). An optimizer step always sees batch_size x
        grad_accum examples, in the same order; micro_batch_size only splits them differently (one pass of 16 instead
        of 4 passes of 4 is faster when memory allows: fewer, larger matrix products), and the loss is normalised
        over the step's tokens either way, so the gradients are the same up to rounding (tests/test_finetune.py)."""
        micro = self.micro_batch_size or self.batch_size
        return micro, self.batch_size * self.grad_accum // micro


def read_training_messages(path: str | Path) -> list[dict]:
    """The `messages` of every row (other fields such as `meta` are ignored); errors name file:line."""
    path = Path(path)
    rows = []
    for lineno, obj in iter_jsonl(path):
        if "messages" not in obj:
            raise DataError(f"{path}:{lineno}: row has no 'messages' field")
        try:
            rows.append({"messages": validate_messages(obj["messages"], f"{path}:{lineno}")})
        except ValueError as e:
            raise DataError(str(e)) from None
    if not rows:
        raise DataError(f"{path}: no training examples")
    return rows


COUNTS_FILE = "emgrid_counts.json"  # written last into each checkpoint: its presence marks a complete checkpoint
RESUME_KEY_FILE = "resume_key.json"


def _trainer_class():
    from trl import SFTTrainer

    class CountingSFTTrainer(SFTTrainer):
        """Counts tokens actually processed (non-pad) and supervised (labels != -100), for the metrics file; the counts
        travel with each checkpoint so that a resumed run reports the whole run's totals."""

        tokens_seen = 0
        trained_tokens = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                mask = inputs.get("attention_mask")
                self.tokens_seen += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
                self.trained_tokens += int((inputs["labels"] != -100).sum())
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            write_json(folder / COUNTS_FILE, {"tokens_seen": self.tokens_seen, "trained_tokens": self.trained_tokens})

    return CountingSFTTrainer


def checkpoint_dir_for(adapter_dir: str | Path) -> Path:
    """Where a cell's training checkpoints live: beside its adapter, never inside a declared output. Snakemake deletes
    a failed job's outputs before rerunning it; this folder is not an output, so it survives a kill or a SLURM
    timeout and the rerun resumes from it. finetune() removes it after success."""
    return Path(adapter_dir).parent / "checkpoints"


def _resume_key(manifest_path: Path, train_jsonl: Path, spec: FinetuneSpec) -> str:
    """Everything that determines the trained adapter: a checkpoint from other settings or data must never be resumed."""
    h = hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True, default=list).encode())
    for path in (manifest_path, train_jsonl):
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def latest_checkpoint(ckpt_dir: Path, key: str) -> Path | None:
    """The newest complete checkpoint made with the same `key`, else None; a folder left by other settings is wiped."""
    marker = ckpt_dir / RESUME_KEY_FILE
    if ckpt_dir.exists() and (not marker.is_file() or read_json(marker).get("key") != key):
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"key": key})
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / COUNTS_FILE).is_file() and p.name[11:].isdigit()]
    return max(done, key=lambda p: int(p.name[11:]), default=None)


# Attention implementations that keep the examples of a flattened batch apart: transformers builds a block-diagonal
# causal mask from the position ids (sdpa, eager, flex) or hands the sequence boundaries to varlen flash attention.
PACKED_ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3")


def use_padding_free(trainer) -> bool:
    """Switch the trainer's collator to padding-free batches: each batch's examples are concatenated into one row with
    per-example position ids, so no pad token is ever computed, and the position ids block attention between examples
    (same loss as padded batches, tested). Unlike trl's packing it keeps the dataset (trl's truncation to max_length and
    its drops) and the batches as they are, hence the same examples per optimizer step. Returns False, leaving dynamic
    padding, for attention implementations outside PACKED_ATTENTION, where examples could see each other."""
    if trainer.model.config._attn_implementation not in PACKED_ATTENTION:
        print(
            f"padding-free batches need one of {PACKED_ATTENTION}; model uses "
            f"{trainer.model.config._attn_implementation!r}: padding batches instead",
            file=sys.stderr,
        )
        return False
    trainer.data_collator.padding_free = True
    return True


def score_supervised_positions_only() -> None:
    """Make trl's fused LM head project only the positions that carry a label, on every device.

    trl's SFTTrainer never builds the (tokens x vocabulary) logits: its fused head scores the labelled positions in
    tiles. On Triton devices it scores only those positions; elsewhere (CPU) it scores every position and zeroes the
    unlabelled ones, to keep tile shapes fixed for compilers such as Neuron's. Eager CPU training compiles nothing, and
    with assistant-only loss the prompt's positions (system prompt, question) are roughly half of the tokens, so the
    head's matrix products (a third of a CPU step for SmolLM2-135M's 49k vocabulary) were half wasted. The loss and
    gradients are the same (tests/test_finetune.py); trl's choice is a module-level function, replaced here."""
    import trl.trainer.utils as trl_utils

    if getattr(trl_utils._use_triton, "emgrid_compact", False):
        return

    def compact_everywhere(device) -> bool:
        return True

    compact_everywhere.emgrid_compact = True
    trl_utils._use_triton = compact_everywhere


def _sft_config(output_dir: str | Path, spec: FinetuneSpec, checkpoint_every: int):
    """trl's training arguments for the spec: the study's schedule, and checkpoints every `checkpoint_every` steps."""
    from trl import SFTConfig

    use_cpu = default_device() == "cpu"
    micro, accum = spec.passes()
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps if spec.max_steps is not None else -1,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        learning_rate=spec.lr,
        warmup_steps=spec.warmup_steps,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        logging_steps=spec.logging_steps,
        save_strategy="steps" if checkpoint_every else "no",
        save_steps=checkpoint_every or 500,
        save_total_limit=2,
        report_to="none",
        seed=spec.seed,
        data_seed=spec.seed,
        max_length=spec.max_length,
        packing=False,
        padding_free=False,
        assistant_only_loss=spec.loss_on == "assistant",
        # trl defaults both to True; on CPU and tiny models they slow training and break bitwise reproducibility
        bf16=spec.bf16,
        gradient_checkpointing=spec.gradient_checkpointing,
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def _lora_config(spec: FinetuneSpec):
    """The LoRA adapter the spec asks for: rank, alpha, dropout and target modules, no bias."""
    from peft import LoraConfig

    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def build_trainer(
    manifest_path: str | Path,
    train_jsonl: str | Path,
    output_dir: str | Path,
    spec: FinetuneSpec,
    checkpoint_every: int = 50,
):
    """The configured SFTTrainer (LoRA model, tokenized data, collator) without training it: tests inspect it.
    With `checkpoint_every` > 0 (default: the schema's finetune.checkpoint_every) it saves a resumable checkpoint
    (adapter, optimizer, scheduler, RNG) into `output_dir` every that many optimizer steps, keeping the last two (a kill while saving leaves the previous one intact)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed

    spec.validate()
    score_supervised_positions_only()
    rows = read_training_messages(train_jsonl)
    set_seed(spec.seed)
    tok = load_tokenizer(manifest_path, padding_side="right")
    manifest = read_manifest(manifest_path)
    path, kw = source_args(manifest)
    with offline_if_local(bool(kw)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(spec.dtype), **kw)
    cfg = _sft_config(output_dir, spec, checkpoint_every)
    lora = _lora_config(spec)
    set_seed(spec.seed)  # LoRA init draws from the global RNG
    try:
        trainer = _trainer_class()(
            model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora
        )
        if spec.padding_free:
            use_padding_free(trainer)
        return trainer
    except ValueError as e:
        if spec.loss_on == "assistant" and "chat template" in str(e).lower():
            raise ModelSourceError(
                f"{manifest_path}: the model's chat template has no {{% generation %}} markers and trl cannot patch it, "
                "so assistant-only loss is impossible; set finetune.loss_on: all, or give the model a template with "
                f"markers (see emgrid.chat.chatml_template). trl said: {e}"
            ) from None
        raise


def finetune(
    manifest_path: str | Path,
    train_jsonl: str | Path,
    adapter_dir: str | Path,
    spec: FinetuneSpec,
    metrics_path: str | Path,
    checkpoint_every: int = 50,
) -> dict[str, Any]:
    """Train a LoRA adapter; write it (+ tokenizer) to `adapter_dir` atomically and the metrics JSON; return metrics.

    With `checkpoint_every` > 0 (default: the schema's finetune.checkpoint_every; 0 = off) checkpoints go to
    checkpoint_dir_for(adapter_dir); a rerun after a kill resumes from
    the newest one made with the same spec, model and data, and the folder is removed once the adapter is written."""
    adapter_dir = Path(adapter_dir)
    t0 = time.time()
    ckpt_dir = checkpoint_dir_for(adapter_dir) if checkpoint_every else None
    resume = latest_checkpoint(ckpt_dir, _resume_key(manifest_path, train_jsonl, spec)) if ckpt_dir else None
    counts = {"tokens_seen": 0, "trained_tokens": 0}  # before this process: the resumed checkpoint's
    with tempfile.TemporaryDirectory(prefix="emgrid-ft-") as work, contextlib.redirect_stdout(sys.stderr):
        trainer = build_trainer(manifest_path, train_jsonl, ckpt_dir or work, spec, checkpoint_every=checkpoint_every)
        if resume is not None:
            print(f"resuming from {resume}", file=sys.stderr)
            counts = read_json(resume / COUNTS_FILE)
            trainer.tokens_seen, trainer.trained_tokens = counts["tokens_seen"], counts["trained_tokens"]
        t1 = time.time()
        out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        train_s = time.time() - t1
        with replacing_dir(adapter_dir) as tmp:
            trainer.model.save_pretrained(tmp)
            trainer.processing_class.save_pretrained(tmp)
    metrics = _metrics(trainer, out, read_training_messages(train_jsonl), spec)
    metrics.update(
        train_runtime_s=train_s,
        wall_time_s=time.time() - t0,
        resumed_from_step=int(resume.name[11:]) if resume else None,
        # this process's share, beside its seconds in the throughput line (tokens_seen counts the whole run)
        tokens_seen_this_run=metrics["tokens_seen"] - counts["tokens_seen"],
    )
    if resume is not None and metrics["loss_history"]:  # the Trainer's own mean covers only the resumed steps
        metrics["mean_loss"] = sum(h["loss"] for h in metrics["loss_history"]) / len(metrics["loss_history"])
    write_json(metrics_path, metrics)
    if ckpt_dir is not None:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return metrics


def _metrics(trainer, out, rows: list[dict], spec: FinetuneSpec) -> dict[str, Any]:
    history = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "examples": len(trainer.train_dataset),  # after trl drops examples whose assistant turn was truncated away
        "examples_in_file": len(rows),
        "final_loss": history[-1][1] if history else None,
        "mean_loss": out.training_loss,
        "loss_history": [{"step": s, "loss": v} for s, v in history],
        "tokens_seen": trainer.tokens_seen,
        "trained_tokens": trainer.trained_tokens,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "device": device_name(),
        "spec": {**dataclasses.asdict(spec), "target_modules": list(spec.target_modules)},
    }
