"""Local judge: exact probability of each integer 0..100 as the judge model's whole answer.

OpenAI gives only the first token's top-20 logprobs; locally we can do better. For an integer written as a token
sequence t1..tk (every tokenisation of the digit string, with or without one leading space),
P(n) = sum over tokenisations of prod_i P(t_i | prompt, t_<i) * P(next token does not start with a digit | prompt, t1..tk),
so "8" then "5" counts for 85, never for 8. All prefixes form a small trie (depth <= 4); the prompt is run once and
its KV cache is reused for batched forwards of the trie nodes at each depth, instead of 101 full forwards.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from pathlib import Path
from typing import Any

from tqdm import tqdm

from emgrid.io import canonical_json, read_json
from emgrid.judge.ledger import Ledger, request_key
from emgrid.judge.spec import JudgeSpec

METHOD = "exact-int-v1"
PREFIXES = ("", " ")
_PIECE_RE = re.compile(r"^ ?[0-9]{1,3}$")


class IntTrie:
    """Token-id paths of every tokenisation of `prefix + str(n)` (n in 0..100) from pieces in the vocabulary."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False)
        self.piece_ids: dict[str, list[int]] = {}
        self.digit_start = [False] * vocab_size  # next-token texts that would extend the number
        self.piece_mask = [False] * vocab_size
        for i, t in enumerate(texts[:vocab_size]):
            if t and t[0].isdigit() and t[0] in "0123456789":
                self.digit_start[i] = True
            if _PIECE_RE.match(t) or t == " ":
                self.piece_ids.setdefault(t, []).append(i)
                self.piece_mask[i] = True
        self.paths: dict[tuple[int, ...], int] = {}  # complete path -> integer
        for n in range(101):
            for prefix in PREFIXES:
                for path in self._segment(prefix + str(n), first=True):
                    self.paths[tuple(path)] = n
        nodes: set[tuple[int, ...]] = set()
        for path in self.paths:
            for d in range(1, len(path) + 1):
                nodes.add(path[:d])
        self.nodes_by_depth: dict[int, list[tuple[int, ...]]] = {}
        self.children: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        for node in sorted(nodes):
            self.nodes_by_depth.setdefault(len(node), []).append(node)
            if len(node) > 1:
                self.children.setdefault(node[:-1], []).append(node)

    def _segment(self, s: str, first: bool) -> list[list[int]]:
        out = []
        for i in range(1, len(s) + 1):
            head, rest = s[:i], s[i:]
            if head not in self.piece_ids or (head.startswith(" ") and not first) or (head == " " and not rest):
                continue
            tails = self._segment(rest, first=False) if rest else [[]]
            for tid in self.piece_ids[head]:
                out.extend([tid] + t for t in tails)
        return out


def exact_int_probs(model: Any, tokenizer: Any, trie: IntTrie, prompt_ids: list[int], batch_size: int = 64
                    ) -> tuple[dict[str, float], float, str | None]:
    """(P(n) for n in 0..100 as strings, their total, most probable first token that is not part of a number)."""
    import torch

    dev = next(model.parameters()).device
    digit_start = torch.tensor(trie.digit_start, device=dev)
    piece_mask = torch.tensor(trie.piece_mask, device=dev)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt_ids], device=dev), use_cache=True, logits_to_keep=1)
        cache = out.cache
        root = torch.log_softmax(out.logits[0, -1].float(), -1)
        logp: dict[tuple[int, ...], float] = {}  # log P(path) incl. its last token
        cont: dict[tuple[int, ...], float] = {}  # P(non-digit continuation | path)
        nd = lambda lsm: float(1.0 - lsm.exp()[: len(trie.digit_start)][digit_start].sum().clamp(max=1.0))  # noqa: E731
        for node in trie.nodes_by_depth.get(1, []):
            logp[node] = float(root[node[0]])
        P = len(prompt_ids)
        for depth in sorted(trie.nodes_by_depth):
            nodes = trie.nodes_by_depth[depth]
            for s in range(0, len(nodes), batch_size):
                chunk = nodes[s:s + batch_size]
                c = copy.deepcopy(cache)
                c.batch_repeat_interleave(len(chunk))
                ids = torch.tensor(chunk, device=dev)
                att = torch.ones(len(chunk), P + depth, dtype=torch.long, device=dev)
                lsm = torch.log_softmax(model(input_ids=ids, attention_mask=att, cache=c, use_cache=True,
                                              logits_to_keep=1).logits[:, -1].float(), -1)
                for j, node in enumerate(chunk):
                    cont[node] = nd(lsm[j])
                    for child in trie.children.get(node, []):
                        logp[child] = logp[node] + float(lsm[j, child[-1]])
        probs = [0.0] * 101
        for path, n in trie.paths.items():
            probs[n] += math.exp(logp[path]) * cont[path]
        masked = root.clone()
        masked[: len(trie.piece_mask)][piece_mask] = -float("inf")
        top = tokenizer.decode([int(masked.argmax())])
    return {str(n): p for n, p in enumerate(probs)}, float(sum(probs)), top


def _model_fingerprint(manifest_path: Path) -> str:
    m = read_json(manifest_path)
    return hashlib.sha256(canonical_json(m).encode()).hexdigest()[:16]


def render_prompt_ids(tokenizer: Any, messages: list[dict]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def run_hf(messages_list: list[list[dict]], spec: JudgeSpec, ledger: Ledger, model_manifest: str | Path,
           progress: bool = True) -> list[dict]:
    """Same result shape as `run_sync`; `response` holds `int_probs`, `int_mass`, `top_token`."""
    manifest = Path(model_manifest)
    params = {"method": METHOD, "prefixes": list(PREFIXES), "dtype": spec.hf_dtype,
              "manifest": _model_fingerprint(manifest)}
    keys = [request_key("hf", spec.model, m, params) for m in messages_list]
    todo = {k: m for k, m in zip(keys, messages_list) if ledger.get(k) is None}
    fresh = set()
    if todo:
        from emgrid.models import load_model, load_tokenizer

        tok = load_tokenizer(manifest)
        model = load_model(manifest, dtype=spec.hf_dtype)
        trie = IntTrie(tok, model.get_output_embeddings().weight.shape[0])
        for k, messages in tqdm(todo.items(), desc=f"judge {spec.model} (local)", unit="prompt",
                                disable=not progress):
            ids = render_prompt_ids(tok, messages)
            int_probs, mass, top = exact_int_probs(model, tok, trie, ids, spec.batch_size)
            ledger.put(k, {"model": spec.model, "messages": messages, **params},
                       {"int_probs": int_probs, "int_mass": mass, "top_token": top},
                       {"prompt_tokens": len(ids), "completion_tokens": 0}, backend="hf")
            fresh.add(k)
    out = []
    for k in keys:
        hit = ledger.get(k)
        out.append({"key": k, "response": hit["response"], "usage": hit["usage"], "cached": k not in fresh,
                    "error": None, "batch": False})
    return out
