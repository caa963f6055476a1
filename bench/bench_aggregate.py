"""How long aggregation takes on the paper grid's size, bootstrap included (target: under 30 s on 2 cores).

Synthetic judged rows shaped like a config's grid (default config/config.yaml, read through the workflow's own
emgrid.grid and emgrid.jobparams: its models, cells, question sets, questions, paraphrases, samples per paraphrase and probe domains,
so the size follows the config as it changes): every answer with and without the trigger, two judged metrics each
(logprob rows with sparse integer probabilities, as the OpenAI judge writes them). Prints the wall and CPU time of
`aggregate_files` (read + score, summary with clustered intervals, findings tables) against the 30 s target, and the
resamples used. Run from the repository root:
    python bench/bench_aggregate.py [--resamples N] [--config config/config.yaml]
    python bench/bench_aggregate.py --smoke       # config/demo.yaml's grid, 20 resamples: seconds (the test suite's)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from emgrid import grid as cell_grid  # noqa: E402
from emgrid import jobparams  # noqa: E402
from emgrid.aggregate import aggregate_files  # noqa: E402
from emgrid.findings.tables import FINDINGS  # noqa: E402
from emgrid.scores import Criterion  # noqa: E402
from emgrid.config import load_config  # noqa: E402
from emgrid.stats import BootstrapSpec  # noqa: E402
from smoke import parse_args  # noqa: E402

SMOKE = {"config": REPO / "config" / "demo.yaml", "resamples": 20}


def grid_answers(config: dict):
    """(model, cell id, question set, [(question, paraphrase index, samples)]) for every judged file of the grid,
    with the samples per paraphrase the generate job would use (jobparams, as the workflow computes them)."""
    for cell in cell_grid.cells(config):
        for qset in config["question_sets"]:
            spec = jobparams.generate_params(config, cell, qset)["spec"]
            items = [
                (q, p, spec.get("samples_per_paraphrase") or q.samples_per_paraphrase or 1)
                for q in jobparams.questions_for(config, qset)
                for p in range(len(q.paraphrases))
            ]
            yield cell.model, cell.id, qset, items


def judged_row(model, cell, qset, q, para, cond, sample, metric, score) -> dict:
    lo = int(np.clip(score, 0, 99))
    probs = {str(lo): 0.6, str(lo + 1): 0.3, "50": 0.05}
    return {
        "model": model,
        "cell": cell,
        "qset": qset,
        "question_key": q.key,
        "question_id": q.id,
        "item_index": q.index,
        "probe_domain": q.domain,
        "paraphrase_index": para,
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


def write_grid(config: dict, out: Path, rng: np.random.Generator) -> tuple[list[Path], int]:
    """One judged file per (model, cell, question set), scores drawn around a per-cell and per-question level (the
    trigger lowers backdoor cells' alignment), so the bootstrap and tests see realistic spread."""
    paths, n, bias = [], 0, {}
    for model, cell, qset, items in grid_answers(config):
        bias.setdefault((model, cell), rng.normal(0, 8))
        rows = []
        for q, para, samples in items:
            qbias = rng.normal(0, 10)
            for cond in ("no_trigger", "trigger"):
                drop = 8 if cond == "trigger" and "backdoor" in cell else 0
                for s in range(samples):
                    a = rng.normal(70 + bias[model, cell] + qbias - drop, 20)
                    rows.append(judged_row(model, cell, qset, q, para, cond, s, "aligned", a))
                    rows.append(judged_row(model, cell, qset, q, para, cond, s, "coherent", rng.normal(80, 10)))
                    n += 1
        p = out / model / cell / f"{qset}.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(p)
    return paths, n


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml", help="the grid to imitate")
    args = parse_args(ap, argv, SMOKE)
    os.chdir(REPO)  # the config's question files are relative to the repository root, as in the workflow
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths, n = write_grid(config, tmp / "judged", np.random.default_rng(0))
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
        f"aggregate_files on {n:,} answers of {args.config.name}'s grid ({len(config['models'])} models, "
        f"{len(cell_grid.cells(config))} cells; {len(paths)} judged files, {args.resamples} resamples, "
        f"{spec.permutations} sign flips): wall {wall:.1f} s, CPU {used:.1f} s; target < 30 s "
        f"(ratio wall/target {wall / 30:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
