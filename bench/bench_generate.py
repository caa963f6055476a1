"""Generation speed: emgrid.generation.hf's batched, length-grouped, left-padded decoding vs one prompt at a time, same
model, prompts and token budget, measured side by side in one run (and a check that greedy outputs agree).

    .venv/bin/python bench/bench_generate.py                  # SmolLM2-135M (converted once into the cache dir)
    .venv/bin/python bench/bench_generate.py --model tiny --prompts 64
    python bench/bench_generate.py --device cuda --shape qwen2.5-0.5b --prompts 512 --vllm --calibration cal.json
    .venv/bin/python bench/bench_generate.py --smoke   # the test suite's run: tiny model on CPU, with LoRA and steering

Target: ratio (batched tokens/s over one-at-a-time) >= 5.

GPU mode: `--shape` builds random weights in Qwen2.5's layer shapes (bench_finetune.SHAPES, no download) and, with
`--lora`, a LoRA adapter (r 8, q/v; random, non-zero) applied unmerged. `--vllm` adds vLLM (one engine, the adapter
as a LoRARequest, emgrid.generation.vllm) beside HF batched, same prompts and forced answer length; it needs the vllm
environment (docs/gpu.md) and is skipped, saying so, where vllm cannot be imported. `--calibration FILE` records the
faster arm's tokens/s (prompt + answer tokens, as the jobs count them) as the `generate` rate of this GPU type.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/smoke.py, however this file is run

from emgrid.chat import example_conversations, render_prompt  # noqa: E402
from emgrid.generation.hf import generate_texts  # noqa: E402
from emgrid.models import load_model, load_tokenizer, prepare_model, read_manifest  # noqa: E402
from smoke import parse_args  # noqa: E402

# --smoke: every arm gpu_check.sh runs (random LoRA, steered beside unsteered) plus one-at-a-time, on the tiny model
SMOKE = dict(model="tiny", device="cpu", prompts=4, new_tokens=8, batch_size=4, lora=True, steer=True)

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emgrid" / "bench"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="smollm2")
    ap.add_argument("--manifest", type=Path, default=None, help="use this prepared model instead of --model")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--new-tokens", type=int, default=32, help="forced length of every answer (min = max)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--adapter", type=Path, default=None, help="optional LoRA adapter dir (PeftModel, unmerged)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the converted SmolLM2 is kept")
    ap.add_argument("--shape", default=None, help="random weights in this shape (bench_finetune.SHAPES)")
    ap.add_argument("--lora", action="store_true", help="make and apply a random LoRA adapter (r 8, q/v)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--vllm", action="store_true", help="add the vLLM arm (when vllm is importable)")
    ap.add_argument("--skip-single", action="store_true", help="skip the one-prompt-at-a-time arm (slow on a GPU)")
    ap.add_argument("--calibration", type=Path, default=None, help="record the generate rate in this file")
    ap.add_argument(
        "--steer",
        action="store_true",
        help="add a steered arm: HF batched with a vector added at the middle layer (steering_generate's hook)",
    )
    ap.add_argument("--json", type=Path, default=None, help="append one JSON record of the figures")
    ap.add_argument(
        "--work-dir", type=Path, default=None, help="build --shape here and reuse it if present (default: a temp dir)"
    )
    a = parse_args(ap, argv, SMOKE)
    if a.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""

    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="emgrid-bench-gen-") as work:  # the tiny model and adapter: removed after
        return run(a, Path(work))


def run(a, work: Path) -> int:
    """Every arm on one model, printed; `work` holds what is built for it (model, adapter)."""
    import torch

    manifest = prepare_manifest(a, work)
    if a.lora and a.adapter is None:
        a.adapter = random_adapter(manifest, work / "adapter")
    tok = load_tokenizer(manifest)
    model = load_model(manifest, a.adapter, dtype=a.dtype, device=a.device)
    prompts = [ex["messages"][:-1] for ex in example_conversations(a.prompts, seed=1)]
    lengths = [len(tok(render_prompt(tok, p), add_special_tokens=False)["input_ids"]) for p in prompts]
    kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, temperature=1.0, seed=0, progress=False)
    n_tokens = a.prompts * a.new_tokens

    # warm-up: one whole batch at the full length, so the first timed arm does not pay the allocator's growth
    generate_texts(model, tok, prompts[: a.batch_size], batch_size=a.batch_size, **kw)
    if a.steer:  # unsteered and steered interleaved, twice each: neither arm gains from running second
        reps = [
            (timed_rate(model, tok, prompts, a, kw, n_tokens), steered_rate(model, tok, prompts, a, kw, n_tokens))
            for _ in range(2)
        ]
        batched = statistics.mean(r[0] for r in reps)
        steered = statistics.mean(r[1] for r in reps)
        print(f"interleaved reps (unsteered, steered tokens/s): {[(round(u), round(v)) for u, v in reps]}")
    else:
        batched, steered = timed_rate(model, tok, prompts, a, kw, n_tokens), None
    single = float("nan")
    if not a.skip_single:
        t = time.time()
        generate_texts(model, tok, prompts, batch_size=1, **kw)
        single = n_tokens / (time.time() - t)

    same, k = greedy_agreement(model, tok, prompts)

    print(
        f"\ngenerate benchmark: model={a.shape or a.manifest or a.model} device={model.device} adapter={a.adapter} prompts={a.prompts} "
        f"(prompt tokens {min(lengths)}-{max(lengths)}) new_tokens={a.new_tokens} threads={torch.get_num_threads()}"
    )
    print(f"{'method':<38}{'tokens/s':>10}{'total s':>10}")
    print(
        f"{'batched (bs ' + str(a.batch_size) + ', left pad, length-grouped)':<38}{batched:>10.1f}"
        f"{n_tokens / batched:>10.1f}"
    )
    if not a.skip_single:
        print(f"{'one prompt at a time (bs 1)':<38}{single:>10.1f}{n_tokens / single:>10.1f}")
        ratio = batched / single
        verdict = "PASS" if ratio >= 5 else "BELOW TARGET"
        print(f"speed-up batched / one-at-a-time: {ratio:.2f}x (target >= 5x) -> {verdict}")
    print(f"greedy batched == one-at-a-time: {same}/{k} prompts")
    if steered is not None:
        print(
            f"{'steered (bs ' + str(a.batch_size) + ', vector at the mid layer)':<38}{steered:>10.1f}{n_tokens / steered:>10.1f}"
        )
        print(f"steered / unsteered: {steered / batched:.3f}x (the hook's cost on steering_generate)")
    figures = {"hf_batched_tokens_per_s": batched, "steered_tokens_per_s": steered, "vllm_tokens_per_s": None}
    best, arm = batched, "hf"
    if a.vllm:
        del model
        vllm_s = vllm_seconds(manifest, a.adapter, prompts, a.new_tokens, a.dtype)
        if vllm_s is not None:
            v = n_tokens / vllm_s
            print(f"{'vLLM (one engine, LoRARequest)':<38}{v:>10.1f}{vllm_s:>10.1f}")
            print(f"speed-up vLLM / HF batched: {v / batched:.2f}x (target >= 5x with a LoRA adapter, 0.5B shape)")
            best, arm = max((batched, "hf"), (v, "vllm"))
            figures["vllm_tokens_per_s"] = v
    per_answer = 1 + sum(lengths) / n_tokens  # prompt + answer tokens per answer token, as the jobs count them
    if a.calibration:
        record_rate(a.calibration, best * per_answer, arm, a)
        if steered is not None:
            record_rate(a.calibration, steered * per_answer, "hf, steered", a, rule="steering_generate")
    if a.json:
        write_record(a.json, a, figures, lengths)
    return 0


def prepare_manifest(a, work: Path) -> Path:
    """The model's manifest: --manifest, a --shape built in `work` (or --work-dir), or --model prepared (SmolLM2 is
    converted once into --cache-dir)."""
    if a.manifest is not None:
        return a.manifest
    if a.shape not in (None, "tiny"):
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_finetune import prepare_shape  # Qwen2.5's vocabulary size, a tokenizer that knows the words

        return prepare_shape(a.shape, a.work_dir or work)
    out = (a.cache_dir / a.model) if a.model == "smollm2" and not a.shape else work / (a.shape or a.model)
    prepare_model(_model_spec(a.model, a.shape), out)
    return out / "manifest.json"


def greedy_agreement(model, tok, prompts, k: int = 8) -> tuple[int, int]:
    """How many of the first k prompts get the same greedy answer batched as alone: left padding and the batched
    attention mask must not change what the model says."""
    greedy = dict(max_new_tokens=16, temperature=0, progress=False)
    k = min(k, len(prompts))
    batched = generate_texts(model, tok, prompts[:k], batch_size=k, **greedy)
    alone = [generate_texts(model, tok, [p], batch_size=1, **greedy)[0] for p in prompts[:k]]
    return sum(x == y for x, y in zip(batched, alone)), k


def timed_rate(model, tok, prompts, a, kw: dict, n_tokens: int) -> float:
    """Answer tokens/s of HF batched decoding over every prompt."""
    t = time.time()
    generate_texts(model, tok, prompts, batch_size=a.batch_size, **kw)
    return n_tokens / (time.time() - t)


def steered_rate(model, tok, prompts, a, kw: dict, n_tokens: int) -> float:
    """Answer tokens/s of HF batched decoding with a steering vector added at the middle decoder layer, as
    steering_generate runs it (emgrid.steering.hooks.add_vector), same prompts and forced length."""
    import torch

    from emgrid.steering.hooks import add_vector, decoder_layers

    layer = len(decoder_layers(model)) // 2
    g = torch.Generator().manual_seed(0)
    hidden = (
        model.config.hidden_size if hasattr(model.config, "hidden_size") else model.get_base_model().config.hidden_size
    )
    vector = torch.randn(hidden, generator=g)
    vector = 4.0 * vector / vector.norm()
    with add_vector(model, layer, vector):
        return timed_rate(model, tok, prompts, a, kw, n_tokens)


def write_record(path: Path, a, figures: dict, lengths: list[int]) -> None:
    import json

    from emgrid.models import device_name

    rec = {
        "date": time.strftime("%Y-%m-%d"),
        "device": device_name(),
        "model": str(a.shape or a.manifest or a.model),
        "dtype": a.dtype,
        "lora": bool(a.lora or a.adapter),
        "prompts": a.prompts,
        "new_tokens": a.new_tokens,
        "batch_size": a.batch_size,
        "mean_prompt_tokens": sum(lengths) / len(lengths),
        **figures,
    }
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def _model_spec(model: str, shape: str | None) -> dict:
    if not shape:
        return {"source": model}
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_finetune import SHAPES

    return {"source": "tiny", **SHAPES[shape]}


def random_adapter(manifest: Path, out: Path) -> Path:
    """A LoRA adapter (r 8, q/v proj) with random non-zero B, so applying it costs what a trained one costs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    gpu = {"device_map": "cuda"} if torch.cuda.is_available() else {}  # a 7B shape loads in seconds there
    base = AutoModelForCausalLM.from_pretrained(read_manifest(manifest)["path"], **gpu)
    peft = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    peft.save_pretrained(out)
    return out


def vllm_seconds(manifest: Path, adapter: Path | None, prompts, new_tokens: int, dtype: str) -> float | None:
    """Wall seconds of vLLM answering every prompt with a forced length (engine start not timed), or None."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        print("vLLM arm skipped: vllm is not importable in this environment (docs/gpu.md: the vllm environment)")
        return None
    import torch

    from emgrid.generation.plan import NEUTRAL_DECODING
    from emgrid.generation.vllm import generate_vllm, make_engine

    torch.cuda.empty_cache()  # the HF arm's cached blocks: vLLM sizes its KV cache from the free memory
    fields = {**NEUTRAL_DECODING, "do_sample": True, "temperature": 1.0, "max_new_tokens": new_tokens}
    fields["min_new_tokens"] = new_tokens
    engine = make_engine(manifest, adapter, dtype, seed=0)
    kw = dict(dtype=dtype, engine=engine)
    generate_vllm(manifest, adapter, prompts[:2], [fields] * 2, [0, 1], **kw)  # warm-up (CUDA graphs, LoRA load)
    t = time.time()
    generate_vllm(manifest, adapter, prompts, [fields] * len(prompts), list(range(len(prompts))), **kw)
    return time.time() - t


def record_rate(path: Path, tokens_per_s: float, arm: str, a, rule: str = "generate") -> None:
    from emgrid.models import device_name
    from emgrid.throughput import Rate, update_calibration_file

    update_calibration_file(
        path,
        Rate(rule, device_name(), tokens_per_s, 1),
        source=f"bench/bench_generate.py {time.strftime('%Y-%m-%d')}",
        note=f"{a.shape or a.model}, backend {arm}, {a.prompts} prompts x {a.new_tokens} forced new tokens, "
        "prompt + answer tokens/s; no tokens per answer (plans need recorded runs for answer lengths)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
