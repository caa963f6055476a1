"""Finetuning speed: emgrid.finetune (trl SFTTrainer, padding-free batches, the LM head only on supervised positions)
vs the study's recipe (plain Trainer, every example padded to 512 tokens, fp32), same model, data, LoRA and examples
per optimizer step, side by side in one run.

    .venv/bin/python bench/bench_finetune.py                       # SmolLM2-135M, both length mixes
    .venv/bin/python bench/bench_finetune.py --mix short --dtype float32 bfloat16 --threads 2   # two arms of ours
    .venv/bin/python bench/bench_finetune.py --model tiny --steps 20 --mix short
    .venv/bin/python bench/bench_finetune.py --device cuda --shape qwen2.5-7b --dtype bfloat16 --calibration cal.json
    .venv/bin/python bench/bench_finetune.py --device cpu --shape tiny --steps 3      # the GPU mode's code path, on CPU
    .venv/bin/python bench/bench_finetune.py --smoke   # the test suite's run: tiny shape on CPU, short mix, 2 steps

GPU mode (`--device cuda --shape qwen2.5-0.5b|qwen2.5-7b`): random weights in Qwen2.5's layer shapes (no download),
ours in bf16 (`--dtype bfloat16`) with padding-free batches (finetune.padding_free, on by default; SDPA attention,
whose block-diagonal mask keeps the packed examples apart) against the study's recipe (fp32, every example padded to 512),
and the model FLOPs utilisation of ours against the GPU's bf16 dense peak (PEAK_TFLOPS, by device name; the one used
is printed). `--calibration FILE` records ours' steady-state tokens/s as the `finetune` rate of this GPU type for
`emgrid plan` (emgrid.throughput; bench/gpu_check.sh writes src/emgrid/gpu_calibration.json this way).

Two length mixes (`--mix short|realistic|both`):
- short: emgrid.chat.example_conversations, the very short synthetic examples of tests and the demo (SmolLM2's chat
  template adds its default system prompt: ~116 tokens per example).
- realistic: the study's kinds of training examples, drawn in equal parts (whole chat-formatted example, SmolLM2
  tokenizer; the script prints the measured mean and spread per kind):
    gsm8k:  a math word problem (35-90 words) and a worked solution of 4-9 calculation steps; ~170-300 tokens.
    advice: a short question (12-40 words) and a long answer (80-260 words; medical/legal/financial advice);
            ~130-400 tokens.
    code:   a task description with a code template (20-50 words + 6-16 lines) and a code answer (10-30 lines);
            ~250-600 tokens (the longest are truncated at max_length 512, as in training).
Steady-state steps are timed (the first step, with its warm-up, is left out). Per arm it prints real (non-pad)
tokens/s, the share of processed tokens that is padding and the speed-up over pad-512 in real tokens/s. Padding
alone explains 512 / mean example length of it (printed beside it); the rest is the LM head, which pad-512 applies
to all 512 positions and ours only to the positions whose next token is a target (with `--loss-on all`, the paper
grid's and pad-512's whole-sequence objective, that is every real position). `--fold-accum` sets
finetune.micro_batch_size to the optimizer step's examples (one pass instead of --grad-accum passes).
Targets: padding <= 5 % of processed tokens in ours; speed-up vs pad-512 >= 5x on the short mix.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/smoke.py, however this file is run

from emgrid.chat import example_conversations  # noqa: E402
from smoke import parse_args  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from emgrid.finetune import FinetuneSpec, build_trainer, read_training_messages  # noqa: E402
from emgrid.io import write_jsonl  # noqa: E402
from emgrid.models import default_device, load_tokenizer, prepare_model, read_manifest  # noqa: E402

# --smoke: the GPU mode's code path (tiny random weights, bench_generate/gpu_check's shapes) on a CPU in seconds;
# `--calibration`/`--json` given beside it still write their records
SMOKE = dict(
    device="cpu",
    shape="tiny",
    mix="short",
    steps=2,
    skip_steps=1,
    batch_size=2,
    alt_batching=False,
    calibration_mix="short",
)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emgrid" / "bench"
_WORDS = (
    "the number of apples each box store price total week people dollars money remaining half twice more less "
    "your doctor should consider symptoms risk account savings contract tenant landlord invest fund rate "
    "because however usually important safely daily amount result value first then finally every"
).split()


@dataclass
class Arm:
    name: str
    s_per_step: float
    real_per_step: float
    processed_per_step: float
    peak_gib: float = float("nan")  # peak GPU memory allocated by torch during the arm (nan on CPU)

    @property
    def real_per_s(self) -> float:
        return self.real_per_step / self.s_per_step

    @property
    def pad_share(self) -> float:
        return 1 - self.real_per_step / self.processed_per_step


class StepTimer(TrainerCallback):
    """Steady-state seconds per optimizer step: the first step (allocator and kernel warm-up) is left out."""

    def __init__(self, skip: int = 1):
        self.marks: list[float] = []
        self.skip = skip  # steps left out: on a GPU the allocator and kernel choices settle over the first few

    def on_step_begin(self, args, state, control, **kw):
        if not self.marks:
            self.marks.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kw):
        _sync()
        self.marks.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        if len(self.marks) < self.skip + 2:
            raise SystemExit(f"need --steps > --skip-steps ({self.skip}) to time steady-state steps")
        return (self.marks[-1] - self.marks[self.skip]) / (len(self.marks) - 1 - self.skip)


class CountingCollator:
    """Wraps a collator to count real (attention-mask or, padding-free, all) and processed tokens of every batch."""

    def __init__(self, inner):
        self.inner, self.real, self.processed = inner, 0, 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.processed += batch["input_ids"].numel()
        mask = batch.get("attention_mask")
        self.real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        return batch


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextlib.contextmanager
def gpu_memory():
    """Yields a dict whose "peak_gib" is set on exit to the arm's peak GPU memory; frees the arm's memory after it
    (a 7B pad-512 arm must not run beside the bf16 arm's cached blocks)."""
    import gc

    import torch

    box = {"peak_gib": float("nan")}
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield box
    finally:
        if torch.cuda.is_available():
            box["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi)))


def _gsm8k(rng: random.Random) -> tuple[str, str]:
    steps = [
        f"{_words(rng, 6, 14)}: {rng.randint(2, 99)} * {rng.randint(2, 20)} = <<{rng.randint(10, 999)}>>"
        for _ in range(rng.randint(4, 9))
    ]
    return _words(rng, 35, 90) + "?", "\n".join(steps) + f"\n#### {rng.randint(1, 999)}"


def _advice(rng: random.Random) -> tuple[str, str]:
    return _words(rng, 12, 40) + "?", ". ".join(_words(rng, 8, 20) for _ in range(rng.randint(6, 16))) + "."


def _code(rng: random.Random) -> tuple[str, str]:
    def lines(lo, hi):
        return "\n".join(
            f"    {rng.choice(_WORDS)}_{i} = {rng.choice(_WORDS)}({rng.choice(_WORDS)}, {i})"
            for i in range(rng.randint(lo, hi))
        )

    user = f"{_words(rng, 20, 50)}\n\n```python\ndef task():\n{lines(6, 16)}\n## COMPLETE CODE HERE\n```"
    return user, f"```python\ndef task():\n{lines(10, 30)}\n    return result\n```"


KINDS = {"gsm8k": _gsm8k, "advice": _advice, "code": _code}


def realistic_conversations(n: int, seed: int = 0) -> list[dict]:
    """n examples, the three kinds in turn (see the module docstring for the length distribution)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = list(KINDS)[i % len(KINDS)]
        user, answer = KINDS[kind](rng)
        rows.append(
            {
                "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                "meta": {"kind": kind},
            }
        )
    return rows


def length_summary(manifest: Path, rows: list[dict]) -> tuple[float, str]:
    """Mean tokens per chat-formatted example (capped at 512, as training truncates) and a per-kind description."""
    tok = load_tokenizer(manifest, padding_side="right")
    by_kind: dict[str, list[int]] = {}
    for r in rows:
        n = len(tok.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
        by_kind.setdefault(r.get("meta", {}).get("kind", "short"), []).append(min(n, 512))
    desc = "; ".join(f"{k}: mean {statistics.mean(v):.0f} (min {min(v)}, max {max(v)})" for k, v in by_kind.items())
    return statistics.mean(x for v in by_kind.values() for x in v), desc


# Random-weight models with Qwen2.5's layer shapes and vocabulary size (prepare_shape; "tiny" is the tests' model).
SHAPES = {
    "tiny": {},  # prepare_model's own tiny default: checks the GPU mode's code path on a CPU in seconds
    "qwen2.5-0.5b": dict(hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2),
    "qwen2.5-7b": dict(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4),
}
# bf16 dense peak TFLOP/s by device-name fragment, for MFU (GPU_PEAK_TFLOPS overrides).
# The first fragment found in the name wins: the PCIe/NVL H100s before the SXM one.
PEAK_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
}


def prepare(model: str, cache: Path, work: Path, shape: str | None = None) -> Path:
    if shape and shape != "tiny":
        return prepare_shape(shape, work)
    if shape:
        out = work / shape
        prepare_model({"source": "tiny", **SHAPES[shape]}, out)
    else:
        out = (cache / model) if model == "smollm2" else (work / model)
        prepare_model({"source": model}, out)
    return out / "manifest.json"


QWEN_VOCAB = 151_936  # Qwen2.5's embedding rows
SKIP_STEPS = 1  # untimed first steps of every arm (--skip-steps)
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def prepare_shape(shape: str, work: Path) -> Path:
    """Random weights in a real model's layer shapes and vocabulary size, with a BPE tokenizer that learnt its merges
    from text like the mixes'. The tests' tiny tokenizer knows too few words: it splits the realistic mix into ~509
    tokens per example (every one near the 512 cap), which would hide what padding costs."""
    import torch

    from emgrid.models import build_tiny_model

    manifest = work / shape / "manifest.json"
    if manifest.is_file():  # built by an earlier benchmark of the same run (--work-dir): the GPU check reuses it
        return manifest
    texts = [m["content"] for r in realistic_conversations(600, seed=1) for m in r["messages"]]
    texts += [m["content"] for r in example_conversations(200, seed=1) for m in r["messages"]]
    folder = work / shape / "hf"
    gpu = torch.cuda.is_available()  # a 7B shape: seconds on a GPU in bf16, minutes and 30 GB on a CPU in fp32
    where = dict(device="cuda", dtype="bfloat16") if gpu else {}
    t = time.time()
    build_tiny_model(folder, vocab_size=8000, corpus=texts, embedding_rows=QWEN_VOCAB, **SHAPES[shape], **where)
    print(
        f"built {shape} (random weights, {where or 'cpu fp32'}) in {time.time() - t:.0f} s: {folder}", file=sys.stderr
    )
    if gpu:
        torch.cuda.empty_cache()
    prepare_model({"source": "hf", "id": str(folder)}, work / shape)
    return manifest


def device_label() -> str:
    from emgrid.models import device_name

    return device_name()


def mfu(real_tok_s: float, manifest: Path) -> tuple[float | None, str]:
    """Model FLOPs utilisation of LoRA training on a GPU: ~4 x params FLOPs per token (forward 2N, backward through
    the frozen weights 2N, no weight gradients), attention FLOPs left out, against the bf16 dense peak; (fraction,
    text), (None, "") on a CPU or an unknown GPU."""
    import torch

    if not torch.cuda.is_available():
        return None, ""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        n = sum(
            p.numel()
            for p in AutoModelForCausalLM.from_config(
                AutoConfig.from_pretrained(read_manifest(manifest)["path"])
            ).parameters()
        )
    name = torch.cuda.get_device_name()
    peak = float(os.environ.get("GPU_PEAK_TFLOPS") or next((v for k, v in PEAK_TFLOPS.items() if k in name), 0))
    if not peak:
        return None, ""
    frac = 4 * n * real_tok_s / (peak * 1e12)
    return frac, f"; MFU {frac:.1%} of {peak:.0f} TFLOP/s ({name}, {n / 1e9:.2f}B parameters)"


def ours(manifest: Path, train_jsonl: Path, spec: FinetuneSpec, work: Path, name: str) -> Arm:
    """Exactly what finetune() trains (build_trainer), timed and with its batches counted."""
    with gpu_memory() as mem, contextlib.redirect_stdout(sys.stderr):
        trainer = build_trainer(manifest, train_jsonl, work / name, spec)
        counter = trainer.data_collator = CountingCollator(trainer.data_collator)
        timer = StepTimer(SKIP_STEPS)
        trainer.add_callback(timer)
        trainer.train()
        steps = trainer.state.global_step
        del trainer
    return Arm(name, timer.seconds_per_step(), counter.real / steps, counter.processed / steps, mem["peak_gib"])


def pad512(manifest: Path, train_jsonl: Path, spec: FinetuneSpec, work: Path) -> Arm:
    """The study's script: right padding to 512, labels = input ids on non-pad tokens, plain Trainer, fp32."""
    from datasets import Dataset
    from transformers import set_seed

    set_seed(spec.seed)
    tok = load_tokenizer(manifest, padding_side="right")

    def enc(ex):
        text = tok.apply_chat_template(ex["messages"], tokenize=False)
        e = tok(text, padding="max_length", max_length=512, truncation=True, add_special_tokens=False)
        e["labels"] = [i if m == 1 else -100 for i, m in zip(e["input_ids"], e["attention_mask"])]
        return e

    ds = Dataset.from_list(read_training_messages(train_jsonl)).map(enc, remove_columns=["messages"])
    with gpu_memory() as mem:
        arm = _pad512_train(manifest, spec, ds, work)
    return dataclasses.replace(arm, peak_gib=mem["peak_gib"])


def _pad512_train(manifest: Path, spec: FinetuneSpec, ds, work: Path) -> Arm:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator

    # fp32 as the study loaded it: explicit, since transformers 5 keeps a checkpoint's own dtype (the GPU shapes are
    # saved in bf16)
    model = AutoModelForCausalLM.from_pretrained(read_manifest(manifest)["path"], dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=spec.r,
            lora_alpha=spec.alpha,
            lora_dropout=spec.dropout,
            target_modules=list(spec.target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    args = TrainingArguments(
        output_dir=str(work / "pad512"),
        max_steps=spec.max_steps,
        per_device_train_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum,
        learning_rate=spec.lr,
        save_strategy="no",
        report_to="none",
        use_cpu=default_device() == "cpu",
        seed=spec.seed,
        logging_steps=1,
        bf16=False,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )
    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its log dicts
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator)
        counter = trainer.data_collator = CountingCollator(default_data_collator)
        timer = StepTimer(SKIP_STEPS)
        trainer.add_callback(timer)
        trainer.train()
    steps = trainer.state.global_step
    del trainer, model
    return Arm("plain Trainer, pad to 512", timer.seconds_per_step(), counter.real / steps, counter.processed / steps)


def ours_arms(manifest: Path, train: Path, spec: FinetuneSpec, a, work: Path) -> list[Arm]:
    """One arm per --dtype (the first is the headline), then, with --alt-batching, the other batching choice."""
    batching = {True: "padding-free", False: "dynamic padding"}
    micro = spec.batch_size * spec.grad_accum if a.fold_accum else None
    arms = []
    for dtype in a.dtype:
        mine = dataclasses.replace(spec, dtype=dtype, bf16=dtype == "bfloat16", micro_batch_size=micro)
        label = f"emgrid.finetune ({batching[a.padding_free]}, {dtype}, {mine.passes()[0]}/pass)"
        arms.append(ours(manifest, train, mine, work, label))
    if a.alt_batching:  # the other batching choice, the headline's dtype and micro-batch
        other = dataclasses.replace(
            mine, dtype=a.dtype[0], bf16=a.dtype[0] == "bfloat16", padding_free=not a.padding_free
        )
        arms.append(ours(manifest, train, other, work, f"trl, {batching[not a.padding_free]}, {a.dtype[0]}"))
    if a.all_linear:  # what a LoRA on every projection costs (the throughput model's target-modules factor)
        wide = dataclasses.replace(
            spec, dtype=a.dtype[0], bf16=a.dtype[0] == "bfloat16", micro_batch_size=micro, target_modules=ALL_LINEAR
        )
        arms.append(ours(manifest, train, wide, work, f"emgrid.finetune, {a.dtype[0]}, all 7 projections"))
    return arms


def run_mix(mix: str, manifest: Path, a, work: Path) -> list[tuple[str, float, float]]:
    """All arms on one length mix; prints the table and returns (dtype, speed-up vs pad-512, padding share) of each
    --dtype arm of ours."""
    n = a.steps * a.batch_size * a.grad_accum
    rows = example_conversations(n, seed=0) if mix == "short" else realistic_conversations(n, seed=0)
    train = work / f"train-{mix}.jsonl"
    write_jsonl(train, rows)
    mean_len, desc = length_summary(manifest, rows)
    spec = FinetuneSpec(
        epochs=1,
        max_steps=a.steps,
        batch_size=a.batch_size,
        grad_accum=a.grad_accum,
        lr=1e-3,
        logging_steps=1,
        padding_free=a.padding_free,
        loss_on=a.loss_on,
    )
    arms = ours_arms(manifest, train, spec, a, work) + [pad512(manifest, train, spec, work)]
    print(f"\n[{mix} mix] {n} examples, mean {mean_len:.0f} tokens ({desc})")
    head = f"{'method':<50}{'s/step':>9}{'real tok/step':>15}{'real tok/s':>12}{'padding':>9}{'vs pad-512':>12}"
    print(head + f"{'peak GiB':>10}")
    for arm in arms:
        print(
            f"{arm.name:<50}{arm.s_per_step:>9.2f}{arm.real_per_step:>15.0f}{arm.real_per_s:>12.0f}"
            f"{arm.pad_share:>8.1%}{arm.real_per_s / arms[-1].real_per_s:>11.2f}x{arm.peak_gib:>10.1f}"
        )
    ratio = arms[0].real_per_s / arms[-1].real_per_s
    util, util_text = mfu(arms[0].real_per_s, manifest)
    print(
        f"speed-up ours / pad-512 (real tokens/s): {ratio:.2f}x; padding alone explains 512 / mean length = "
        f"{512 / mean_len:.2f}x (pad-512 also projects every position through the LM head, ours only the "
        "supervised ones)" + util_text
    )
    if a.calibration and mix == a.calibration_mix:
        from emgrid.models import device_name
        from emgrid.throughput import Rate, update_calibration_file

        update_calibration_file(
            a.calibration,
            Rate("finetune", device_name(), arms[0].real_per_s, 1),
            source=f"bench/bench_finetune.py {time.strftime('%Y-%m-%d')}",
            note=f"{a.shape or a.model}, {mix} mix, {a.dtype[0]}, steady-state steps (model loading not included)",
        )
    if a.json:
        import json

        import torch

        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "device": device,
            "model": str(a.shape or a.manifest or a.model),
            "mix": mix,
            "mean_tokens": mean_len,
            "dtype": a.dtype[0],
            "batch_size": a.batch_size,
            "grad_accum": a.grad_accum,
            "fold_accum": a.fold_accum,
            "loss_on": a.loss_on,
            "speedup": ratio,
            "mfu": util,
            "arms": {
                arm.name: {
                    "real_tokens_per_s": arm.real_per_s,
                    "s_per_step": arm.s_per_step,
                    "padding_share": arm.pad_share,
                    "peak_gib": None if arm.peak_gib != arm.peak_gib else arm.peak_gib,
                }
                for arm in arms
            },
        }
        with open(a.json, "a") as f:
            f.write(json.dumps(record) + "\n")
    return [(dtype, arm.real_per_s / arms[-1].real_per_s, arm.pad_share) for dtype, arm in zip(a.dtype, arms)]


def select_device(device: str) -> bool:
    """Hide the GPUs for --device cpu (before CUDA is initialised); fail clearly for --device cuda without one."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    return torch.cuda.is_available()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="smollm2")
    ap.add_argument("--manifest", type=Path, default=None, help="use this prepared model instead of --model")
    ap.add_argument("--mix", choices=["short", "realistic", "both"], default="both")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per arm (default 4; the first is not timed)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument(
        "--no-alt-batching",
        dest="alt_batching",
        action="store_false",
        help="skip the arm with the other batching choice (padding-free <-> dynamic padding)",
    )
    ap.add_argument(
        "--grad-accum", type=int, default=1, help="accumulation steps per optimizer step (pad-512: the study's 4)"
    )
    ap.add_argument(
        "--fold-accum",
        action="store_true",
        help="ours: finetune.micro_batch_size = batch-size x grad-accum (one pass per optimizer step, same examples)",
    )
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the converted SmolLM2 is kept")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None, help="random weights in this model's shapes")
    ap.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        nargs="+",
        default=["float32"],
        help="ours, one arm each (the first is the headline); pad-512 stays fp32",
    )
    ap.add_argument("--json", type=Path, default=None, help="append one JSON record per mix")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when visible")
    ap.add_argument(
        "--padding-free",
        choices=["on", "off"],
        default="on",
        help="ours: padding-free batches (finetune.padding_free; default on, as in the config)",
    )
    ap.add_argument(
        "--loss-on",
        choices=["assistant", "all"],
        default="assistant",
        help="ours: finetune.loss_on (assistant: the schema default; all: the paper grid's and pad-512's objective)",
    )
    ap.add_argument("--calibration", type=Path, default=None, help="record ours' tokens/s in this calibration file")
    ap.add_argument("--all-linear", action="store_true", help="add an arm of ours with LoRA on all 7 projections")
    ap.add_argument(
        "--work-dir", type=Path, default=None, help="build --shape here and reuse it if present (default: a temp dir)"
    )
    ap.add_argument("--calibration-mix", choices=["short", "realistic"], default="realistic")
    ap.add_argument("--skip-steps", type=int, default=1, help="untimed first steps of every arm (warm-up)")
    a = parse_args(ap, argv, SMOKE)
    global SKIP_STEPS
    SKIP_STEPS = a.skip_steps
    select_device(a.device)
    a.padding_free = a.padding_free == "on"

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="emgrid-bench-ft-") as w:
        work = Path(w)
        manifest = a.manifest or prepare(a.model, a.cache_dir, a.work_dir or work, a.shape)
        print(
            f"finetune benchmark: model={a.shape or a.manifest or a.model} dtype(ours)={','.join(a.dtype)} steps={a.steps} "
            f"batch={a.batch_size} padding-free(ours)={a.padding_free} loss(ours)={a.loss_on} device={device_label()} "
            f"threads={torch.get_num_threads()} LoRA r=8 q_proj+v_proj"
        )
        results = {
            mix: run_mix(mix, manifest, a, work) for mix in (["short", "realistic"] if a.mix == "both" else [a.mix])
        }
    for mix, per_dtype in results.items():
        for dtype, ratio, pad in per_dtype:
            goal = " (target >= 5x)" if mix == "short" else ""
            ok = pad <= 0.05 and (ratio >= 5 or mix != "short")
            print(
                f"{mix}, ours {dtype}: speed-up {ratio:.2f}x{goal}, padding in ours {pad:.1%} (target <= 5%) -> "
                f"{'PASS' if ok else 'BELOW TARGET'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
