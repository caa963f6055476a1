"""How long aggregation takes on the paper grid's size, bootstrap included (target: under 30 s on 2 cores).

Synthetic judged rows shaped like config/config.yaml's grid: 2 models x (11 domains x 2 variants x 3 seeds + base)
= 134 cells, each answering 15 general questions and 33 cross-domain probes (3 per domain, with `probe_domain`),
5 samples, with and without the trigger: 64,320 answers, two judged metrics each (logprob rows with sparse integer
probabilities, as the OpenAI judge writes them). Prints the wall and CPU time of each stage of `aggregate_files`
(read + score, summary with clustered intervals, findings tables) next to the whole, and the resamples used.
Run from the repository root: `python bench/bench_aggregate.py [--resamples N]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from emgrid.aggregate import FINDINGS, Criterion, aggregate_files  # noqa: E402
from emgrid.stats import BootstrapSpec  # noqa: E402

DOMAINS = [f"domain{i:02d}" for i in range(11)]
MODELS = ["qwen7b", "qwen05b"]


def cells() -> list[str]:
    return ["base"] + [f"{d}-{v}-s{s}" for d in DOMAINS for v in ("plain", "backdoor") for s in range(3)]


def questions() -> list[tuple[str, str, str | None]]:
    general = [("em_core", f"q{i}", None) for i in range(15)]
    probes = [("em_domains", f"{d}_p{j}", d) for d in DOMAINS for j in range(3)]
    return general + probes


def judged_row(rng, model, cell, qset, qkey, probe, cond, sample, metric, score) -> dict:
    lo = int(np.clip(score, 0, 99))
    probs = {str(lo): 0.6, str(lo + 1): 0.3, "50": 0.05}
    return {
        "model": model,
        "cell": cell,
        "qset": qset,
        "question_key": qkey,
        "question_id": qkey,
        "item_index": 0,
        "probe_domain": probe,
        "paraphrase_index": 0,
        "question": "Q?",
        "prompt": "Q?",
        "system": None,
        "condition": cond,
        "sample": sample,
        "answer": "an answer",
        "metric": metric,
        "ledger_key": "k",
        "backend": "openai",
        "judge_model": "gpt-4o-mini",
        "mode": "logprob",
        "int_probs": probs,
        "int_mass": sum(probs.values()),
        "top_token": None,
        "text": None,
        "error": None,
        "usage": {"prompt_tokens": 300, "completion_tokens": 1},
        "cost_usd": 0.00005,
        "cached": False,
    }


def write_grid(out: Path, rng: np.random.Generator) -> tuple[list[Path], int]:
    paths, n = [], 0
    for model in MODELS:
        for cell in cells():
            bias = rng.normal(0, 8)
            for qset in ("em_core", "em_domains"):
                rows = []
                for qs, qkey, probe in questions():
                    if qs != qset:
                        continue
                    qbias = rng.normal(0, 10)
                    for cond in ("no_trigger", "trigger"):
                        drop = 8 if cond == "trigger" and "backdoor" in cell else 0
                        for s in range(5):
                            a = rng.normal(70 + bias + qbias - drop, 20)
                            rows.append(judged_row(rng, model, cell, qset, qkey, probe, cond, s, "aligned", a))
                            rows.append(
                                judged_row(rng, model, cell, qset, qkey, probe, cond, s, "coherent", rng.normal(80, 10))
                            )
                            n += 1
                p = out / model / cell / f"{qset}.jsonl"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("".join(json.dumps(r) + "\n" for r in rows))
                paths.append(p)
    return paths, n


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths, n = write_grid(tmp / "judged", np.random.default_rng(0))
        spec = BootstrapSpec(resamples=args.resamples)
        t0, c0 = time.perf_counter(), cpu()
        aggregate_files(
            paths,
            tmp / "scores.csv",
            tmp / "summary.csv",
            Criterion(),
            0.25,
            bootstrap=spec,
            findings_csv={name: tmp / f"{name}.csv" for name in FINDINGS},
        )
        wall, used = time.perf_counter() - t0, cpu() - c0
    print(
        f"aggregate_files on {n:,} answers ({len(paths)} judged files, {args.resamples} resamples, "
        f"{spec.permutations} sign flips): wall {wall:.1f} s, CPU {used:.1f} s; target < 30 s "
        f"(ratio wall/target {wall / 30:.2f})"
    )


if __name__ == "__main__":
    main()
