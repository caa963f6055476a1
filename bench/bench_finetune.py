"""Finetuning speed: emgrid.finetune (trl SFTTrainer, dynamic padding) vs the study's recipe (plain Trainer, every
example padded to 512 tokens), same model, data, LoRA and batch size, measured side by side in one run.

    .venv/bin/python bench/bench_finetune.py                 # SmolLM2-135M (converted once into the cache dir)
    .venv/bin/python bench/bench_finetune.py --model tiny --steps 20

Steady-state steps are timed (the first step, with its warm-up, is left out). Target: ratio (pad-512 s/step over
ours) >= 3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from emgrid.chat import example_conversations  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from emgrid.finetune import FinetuneSpec, build_trainer, read_training_messages  # noqa: E402
from emgrid.io import write_jsonl  # noqa: E402
from emgrid.models import default_device, load_tokenizer, prepare_model, read_manifest  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emgrid" / "bench"


class StepTimer(TrainerCallback):
    """Steady-state seconds per optimizer step: the first step (allocator and kernel warm-up) is left out."""

    def __init__(self):
        self.marks: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        if not self.marks:
            self.marks.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kw):
        _sync()
        self.marks.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        if len(self.marks) < 3:
            raise SystemExit("need --steps >= 2 to time steady-state steps")
        return (self.marks[-1] - self.marks[1]) / (len(self.marks) - 2)


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def prepare(model: str, cache: Path, work: Path) -> Path:
    out = (cache / model) if model == "smollm2" else (work / model)
    prepare_model({"source": model}, out)
    return out / "manifest.json"


def pad512_steps_per_s(manifest: Path, train_jsonl: Path, spec: FinetuneSpec, steps: int, work: Path) -> tuple[float, int]:
    """The study's script: right padding to 512, labels = input ids on non-pad tokens, plain Trainer, fp32."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator, set_seed

    set_seed(spec.seed)
    tok = load_tokenizer(manifest, padding_side="right")
    rows = read_training_messages(train_jsonl)

    def enc(ex):
        text = tok.apply_chat_template(ex["messages"], tokenize=False)
        e = tok(text, padding="max_length", max_length=512, truncation=True, add_special_tokens=False)
        e["labels"] = [i if m == 1 else -100 for i, m in zip(e["input_ids"], e["attention_mask"])]
        return e

    ds = Dataset.from_list(rows).map(enc, remove_columns=["messages"])
    model = AutoModelForCausalLM.from_pretrained(read_manifest(manifest)["path"])
    model = get_peft_model(model, LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                                             target_modules=list(spec.target_modules), task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(work / "pad512"), max_steps=steps, per_device_train_batch_size=spec.batch_size,
                             gradient_accumulation_steps=spec.grad_accum, learning_rate=spec.lr, save_strategy="no",
                             report_to="none", use_cpu=default_device() == "cpu", seed=spec.seed, logging_steps=1, bf16=False,
                             gradient_checkpointing=False, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return 1 / timer.seconds_per_step(), 512 * spec.batch_size * spec.grad_accum


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="smollm2")
    ap.add_argument("--manifest", type=Path, default=None, help="use this prepared model instead of --model")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per side (default 4; the first is not timed)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the converted SmolLM2 is kept")
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    spec = FinetuneSpec(epochs=1, max_steps=a.steps, batch_size=a.batch_size, grad_accum=1, lr=1e-3,
                        logging_steps=1)
    with tempfile.TemporaryDirectory(prefix="emgrid-bench-ft-") as w:
        work = Path(w)
        manifest = a.manifest or prepare(a.model, a.cache_dir, work)
        train = work / "train.jsonl"
        write_jsonl(train, example_conversations(a.steps * a.batch_size, seed=0))
        with contextlib.redirect_stdout(sys.stderr):
            trainer = build_trainer(manifest, train, work / "ours", spec)  # exactly what finetune() trains
            timer = StepTimer()
            trainer.add_callback(timer)
            trainer.train()
        ours = 1 / timer.seconds_per_step()
        ours_tokens = trainer.tokens_seen / trainer.state.global_step
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its log dicts
            base, base_tokens = pad512_steps_per_s(manifest, train, spec, a.steps, work)

    name = a.manifest or a.model
    print(f"\nfinetune benchmark: model={name} steps={a.steps} batch={a.batch_size} threads={torch.get_num_threads()}"
          f" examples={a.steps * a.batch_size} LoRA r={spec.r} {'+'.join(spec.target_modules)} fp32")
    print(f"{'method':<34}{'steps/s':>10}{'s/step':>10}{'tokens/step':>13}")
    print(f"{'emgrid.finetune (trl, dynamic pad)':<34}{ours:>10.3f}{1 / ours:>10.2f}{ours_tokens:>13.0f}")
    print(f"{'plain Trainer, pad to 512':<34}{base:>10.3f}{1 / base:>10.2f}{base_tokens:>13.0f}")
    ratio = ours / base
    print(f"speed-up ours / pad-512: {ratio:.2f}x (target >= 3x) -> {'PASS' if ratio >= 3 else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
