"""MIA feature throughput: emgrid.analyses.mia's batched, length-sorted, left-padded scoring vs one example at a
time, same model and examples, measured side by side in one run (and the largest feature difference between them).

    .venv/bin/python bench/bench_mia.py                      # SmolLM2-135M (converted once into the cache dir)
    .venv/bin/python bench/bench_mia.py --model tiny --examples 64
    .venv/bin/python bench/bench_mia.py --smoke     # the test suite's run: tiny model on CPU, 8 examples
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/smoke.py, however this file is run

from emgrid.analyses.mia import answer_logprobs, encode_example, features_from_logprobs  # noqa: E402
from emgrid.chat import example_conversations  # noqa: E402
from emgrid.models import load_model, load_tokenizer, prepare_model  # noqa: E402
from smoke import parse_args  # noqa: E402

SMOKE = dict(model="tiny", examples=8, batch_size=4, device="cpu")

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emgrid" / "bench"


def _features(model, tok, enc, batch_size):
    t = time.time()
    lps = answer_logprobs(model, enc, tok.pad_token_id, batch_size=batch_size, progress=False)
    seconds = time.time() - t
    return [features_from_logprobs(lp, e.answer, 20) for lp, e in zip(lps, enc)], seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="smollm2")
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the converted SmolLM2 is kept")
    a = parse_args(ap, argv, SMOKE)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="emgrid-bench-mia-") as w:
        out = (a.cache_dir / a.model) if a.model == "smollm2" else Path(w) / a.model
        prepare_model({"source": a.model}, out)
        tok = load_tokenizer(out / "manifest.json")
        model = load_model(out / "manifest.json", device=a.device)
    rows = example_conversations(a.examples, seed=2)
    enc = [encode_example(tok, r["messages"], "plain", 2048) for r in rows]
    _features(model, tok, enc[:2], 2)  # warm-up
    batched, t_b = _features(model, tok, enc, a.batch_size)
    single, t_s = _features(model, tok, enc, 1)
    diff = max(abs(x[k] - y[k]) for x, y in zip(batched, single) for k in x)
    lengths = [len(e.ids) for e in enc]
    print(
        f"\nMIA feature benchmark: model={a.model} device={model.device} examples={a.examples} "
        f"(tokens {min(lengths)}-{max(lengths)}) threads={torch.get_num_threads()}"
    )
    print(f"{'method':<40}{'examples/s':>12}{'total s':>10}")
    print(
        f"{'batched (bs ' + str(a.batch_size) + ', left pad, length-sorted)':<40}{a.examples / t_b:>12.1f}{t_b:>10.2f}"
    )
    print(f"{'one example at a time (bs 1)':<40}{a.examples / t_s:>12.1f}{t_s:>10.2f}")
    print(f"speed-up batched / one-at-a-time: {t_s / t_b:.2f}x; max |feature difference| = {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
