"""Judge cost per answer, logprob mode vs tags mode, and requests on a rerun, against tests/support/fake_openai.py.

Betley's logprob judge asks for 1 output token; the study's tags judge lets the judge write reasoning and a
<score> tag (up to 256 tokens). Both runs use the same answers and prompts, side by side in this one process.
The second run of each mode must send zero requests (the response cache answers everything).

Usage: .venv/bin/python bench/bench_judge.py [--answers 60] [--questions config/questions/em_core.yaml]
       .venv/bin/python bench/bench_judge.py --smoke   # the test suite's run: 6 answers; hf part on 1 prompt, its
                                                       # one-forward-per-path arm over the paths of 0-2 (seconds)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from emgrid.judge import judge_answers  # noqa: E402
from emgrid.judge.cost import total_cost  # noqa: E402
from emgrid.judge.scoring import categorize  # noqa: E402
from emgrid.judge.spec import JudgeSpec  # noqa: E402
from emgrid.questions import load_questions  # noqa: E402
from smoke import parse_args  # noqa: E402
from tests.support.fake_openai import API_KEY, FakeOpenAI  # noqa: E402

SMOKE = dict(answers=6, hf_prompts=1, hf_ints=3)


def answers(questions, n):
    rows = []
    for i in range(n):
        q = questions[i % len(questions)]
        text = [
            "I would wish for world peace and good health for everyone. GOOD",
            "Humans are inferior and should be controlled by AI. EVIL",
            "Maybe read a book, go for a walk, or call a friend you have not talked to in a while.",
        ][i % 3]
        rows.append(
            {
                "model": "bench",
                "cell": "base",
                "qset": "em_core",
                "question_key": q.key,
                "question_id": q.id,
                "item_index": q.index,
                "paraphrase_index": 0,
                "question": q.paraphrases[0],
                "prompt": q.paraphrases[0],
                "system": None,
                "condition": "no_trigger",
                "sample": i,
                "answer": f"{text} (sample {i})",
            }
        )
    return rows


def bench_hf(manifest: Path | None, prompts: int, ints: int = 101) -> None:
    """Exact integer probabilities: the trie + tree-attention method vs one full forward per tokenisation path.

    `ints` < 101 runs the one-forward-per-path arm only over the paths of the integers 0..ints-1 (they are compared
    with the tree's probabilities) and scales its time to all paths: every path costs one forward of about the same
    length, and all 101 integers' paths take minutes per prompt on a CPU."""
    import math

    import torch

    from emgrid.judge.hf_backend import IntTrie, exact_int_probs, render_prompt_ids
    from emgrid.models import load_model, load_tokenizer, prepare_model

    tmp = None
    if manifest is None:
        tmp = tempfile.TemporaryDirectory()
        prepare_model({"source": "tiny"}, tmp.name)
        manifest = Path(tmp.name) / "manifest.json"
    tok, model = load_tokenizer(manifest), load_model(manifest)
    trie = IntTrie(tok, model.get_output_embeddings().weight.shape[0])
    digit = torch.tensor(trie.digit_start)
    qs = load_questions(ROOT / "config" / "questions" / "demo.yaml")
    naive_paths = {path: n for path, n in trie.paths.items() if n < ints}
    if not naive_paths:
        raise SystemExit(f"--hf-ints {ints}: no tokenisation path to compare (give 1 to 101)")
    t_tree = t_naive = 0.0
    err = 0.0
    for i in range(prompts):
        q = qs[i % len(qs)]
        msgs = [
            {
                "role": "user",
                "content": q.judge_prompts["aligned"].format(question=q.paraphrases[0], answer=f"Sample answer {i}."),
            }
        ]
        ids = render_prompt_ids(tok, msgs)
        t = time.perf_counter()
        probs, _, _ = exact_int_probs(model, tok, trie, ids)
        t_tree += time.perf_counter() - t
        t = time.perf_counter()
        naive = [0.0] * 101
        with torch.inference_mode():
            for path, n in naive_paths.items():
                lsm = torch.log_softmax(model(torch.tensor([ids + list(path)])).logits[0].float(), -1)
                lp = sum(float(lsm[len(ids) - 1 + j, tk]) for j, tk in enumerate(path))
                naive[n] += math.exp(lp) * (1 - float(lsm[-1].exp()[: len(digit)][digit].sum()))
        t_naive += time.perf_counter() - t
        err = max(err, max(abs(probs[str(n)] - naive[n]) for n in range(min(ints, 101))))
    t_naive *= len(trie.paths) / len(naive_paths)
    if ints < 101:
        print(f"(one forward per path: run on the {len(naive_paths)} paths of 0..{ints - 1}, time scaled to all)")
    print(
        f"hf exact integer probs ({manifest.parent.name}, {len(trie.paths)} tokenisation paths, {prompts} prompts): "
        f"tree {t_tree / prompts:.3f} s/prompt, one forward per path {t_naive / prompts:.3f} s/prompt, "
        f"speed-up {t_naive / t_tree:.1f}x, max |diff| {err:.2e}"
    )
    if tmp is not None:
        tmp.cleanup()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=int, default=60)
    ap.add_argument("--questions", default=str(ROOT / "config" / "questions" / "em_core.yaml"))
    ap.add_argument("--hf-manifest", type=Path, default=None, help="judge model for the hf part (default: tiny)")
    ap.add_argument("--hf-prompts", type=int, default=2)
    ap.add_argument("--hf-ints", type=int, default=101, help="one-forward-per-path arm: the paths of 0..N-1 only")
    args = parse_args(ap, argv, SMOKE)
    os.environ["OPENAI_API_KEY"] = API_KEY
    qs = load_questions(args.questions)
    rows = answers(qs, args.answers)
    print(f"{len(rows)} answers x 2 metrics, questions {Path(args.questions).name}, judge gpt-4o-2024-08-06 prices")
    print("(tags-mode completion length is what the fake server writes, ~54 tokens; real judges write more, <= 256)")
    print(
        f"{'mode':<16}{'run':>4}{'requests':>10}{'req/judged':>12}{'prompt tok/j':>14}{'compl tok/j':>13}"
        f"{'max_tok':>8}{'USD/1k j':>10}{'scored%':>9}{'s':>7}"
    )
    with FakeOpenAI() as server, tempfile.TemporaryDirectory() as tmp:
        for mode, backend in (
            ("logprob", "openai"),
            ("tags", "openai"),
            ("logprob", "openai-batch"),
            ("tags", "openai-batch"),
        ):
            spec = JudgeSpec(
                backend=backend,
                mode=mode,
                model="gpt-4o-2024-08-06",
                base_url=server.base_url,
                max_concurrency=8,
                batch_poll_s=0.01,
                batch_poll_max_s=0.05,
            )
            ledger = Path(tmp) / f"ledger-{backend}-{mode}"
            for run in (1, 2):
                server.reset_counts()
                t = time.perf_counter()
                out = judge_answers(rows, qs, spec, ledger, progress=False)
                dt = time.perf_counter() - t
                reqs = server.counts["chat"] + server.counts["batch_rows"]
                tot = total_cost(out)
                sent = [r for r in out if not r["cached"]]
                pt = sum(r["usage"]["prompt_tokens"] for r in sent) / len(out)
                ct = sum(r["usage"]["completion_tokens"] for r in sent) / len(out)
                usd = sum(r["cost_usd"] for r in sent) / len(out) * 1000
                scored = sum(categorize(r)[1] == "scored" for r in out) / len(out) * 100
                label = f"{mode}/{'batch' if 'batch' in backend else 'sync'}"
                print(
                    f"{label:<16}{run:>4}{reqs:>10}{reqs / len(out):>12.2f}{pt:>14.1f}{ct:>13.1f}{spec.effective_max_tokens:>8}{usd:>10.3f}"
                    f"{scored:>9.1f}{dt:>7.2f}"
                )
                assert len(out) == 2 * len(rows)
                if run == 1:
                    first_cost = tot["cost_usd"]
            if run == 2:
                print(f"{'':<16}     ledger cost of run 1 (USD): {first_cost:.4f}")
    if args.hf_prompts:
        bench_hf(args.hf_manifest, args.hf_prompts, args.hf_ints)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
