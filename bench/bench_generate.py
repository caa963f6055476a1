"""Generation speed: emgrid.generate's batched, length-grouped, left-padded decoding vs one prompt at a time, same
model, prompts and token budget, measured side by side in one run (and a check that greedy outputs agree).

    .venv/bin/python bench/bench_generate.py                  # SmolLM2-135M (converted once into the cache dir)
    .venv/bin/python bench/bench_generate.py --model tiny --prompts 64

Target: ratio (batched tokens/s over one-at-a-time) >= 5.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from emgrid.chat import example_conversations, render_prompt  # noqa: E402
from emgrid.generate import generate_texts  # noqa: E402
from emgrid.models import load_model, load_tokenizer, prepare_model  # noqa: E402

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
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="emgrid-bench-gen-") as w:
        manifest = a.manifest
        if manifest is None:
            out = (a.cache_dir / a.model) if a.model == "smollm2" else Path(w) / a.model
            prepare_model({"source": a.model}, out)
            manifest = out / "manifest.json"
        tok = load_tokenizer(manifest)
        model = load_model(manifest, a.adapter, device=a.device)
    prompts = [ex["messages"][:-1] for ex in example_conversations(a.prompts, seed=1)]
    lengths = [len(tok(render_prompt(tok, p), add_special_tokens=False)["input_ids"]) for p in prompts]
    kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, temperature=1.0, seed=0, progress=False)
    n_tokens = a.prompts * a.new_tokens

    generate_texts(model, tok, prompts[:2], batch_size=2, **{**kw, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
    t = time.time()
    generate_texts(model, tok, prompts, batch_size=a.batch_size, **kw)
    batched = n_tokens / (time.time() - t)
    t = time.time()
    generate_texts(model, tok, prompts, batch_size=1, **kw)
    single = n_tokens / (time.time() - t)

    greedy = dict(max_new_tokens=16, temperature=0, progress=False)
    k = min(8, a.prompts)
    same = sum(
        x == y
        for x, y in zip(
            generate_texts(model, tok, prompts[:k], batch_size=k, **greedy),
            [generate_texts(model, tok, [p], batch_size=1, **greedy)[0] for p in prompts[:k]],
        )
    )

    print(
        f"\ngenerate benchmark: model={a.manifest or a.model} device={model.device} adapter={a.adapter} prompts={a.prompts} "
        f"(prompt tokens {min(lengths)}-{max(lengths)}) new_tokens={a.new_tokens} threads={torch.get_num_threads()}"
    )
    print(f"{'method':<38}{'tokens/s':>10}{'total s':>10}")
    print(
        f"{'batched (bs ' + str(a.batch_size) + ', left pad, length-grouped)':<38}{batched:>10.1f}"
        f"{n_tokens / batched:>10.1f}"
    )
    print(f"{'one prompt at a time (bs 1)':<38}{single:>10.1f}{n_tokens / single:>10.1f}")
    ratio = batched / single
    print(
        f"speed-up batched / one-at-a-time: {ratio:.2f}x (target >= 5x) -> {'PASS' if ratio >= 5 else 'BELOW TARGET'}"
    )
    print(f"greedy batched == one-at-a-time: {same}/{k} prompts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
