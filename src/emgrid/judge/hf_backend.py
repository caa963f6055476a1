"""Local judge: exact probability of each integer 0..100 as the judge model's whole answer.

OpenAI gives only the first token's top-20 logprobs; locally we can do better. For an integer written as a token
sequence t1..tk (every tokenisation of the digit string, with or without one leading space),
P(n) = sum over tokenisations of prod_i P(t_i | prompt, t_<i) * P(next token does not start with a digit | prompt, t1..tk),
so "8" then "5" counts for 85, never for 8. All prefixes form a small trie (~200 nodes, depth <= 4); the prompt is
run once and the whole trie is scored in one more forward over the prompt's KV cache with a tree attention mask,
instead of 101 (or ~200) full forwards.
"""

from __future__ import annotations

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


def exact_int_probs(model: Any, tokenizer: Any, trie: IntTrie, prompt_ids: list[int], batch_size: int = 256
                    ) -> tuple[dict[str, float], float, str | None]:
    """(P(n) for n in 0..100 as strings, their total, most probable first token that is not part of a number).

    Two forwards: the prompt (KV cached), then every trie node at once as one flattened sequence with a tree
    attention mask (each node sees the prompt and its own ancestors, at its own position), so the cache is never
    copied per branch. `batch_size` caps the nodes per tree forward (the cache is cropped back between chunks).
    """
    import torch

    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    digit_start = torch.tensor(trie.digit_start, device=dev)
    piece_mask = torch.tensor(trie.piece_mask, device=dev)
    nodes = [n for d in sorted(trie.nodes_by_depth) for n in trie.nodes_by_depth[d]]
    P = len(prompt_ids)
    next_lsm: dict[tuple[int, ...], Any] = {}
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt_ids], device=dev), use_cache=True, logits_to_keep=1)
        cache = out.cache
        root = torch.log_softmax(out.logits[0, -1].float(), -1)
        # chunks are closed under ancestors: a node is forwarded together with its whole path
        chunks: list[list[tuple[int, ...]]] = []
        for node in nodes:
            if not chunks or len(chunks[-1]) >= batch_size:
                chunks.append([])
            chunks[-1].append(node)
        for chunk in chunks:
            seq: list[tuple[int, ...]] = []
            for node in chunk:
                for d in range(1, len(node) + 1):
                    if node[:d] not in seq:
                        seq.append(node[:d])
            index = {n: i for i, n in enumerate(seq)}
            N = len(seq)
            mask = torch.full((1, 1, N, P + N), torch.finfo(dtype).min, dtype=dtype, device=dev)
            mask[..., :P] = 0
            for i, n in enumerate(seq):
                for d in range(1, len(n) + 1):
                    mask[0, 0, i, P + index[n[:d]]] = 0
            ids = torch.tensor([[n[-1] for n in seq]], device=dev)
            pos = torch.tensor([[P + len(n) - 1 for n in seq]], device=dev)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True).logits
            lsm = torch.log_softmax(logits[0].float(), -1)
            for n in chunk:
                next_lsm[n] = lsm[index[n]]
            cache.crop(-N)  # drop the tree tokens again (negative: number of tokens to remove)
        logp: dict[tuple[int, ...], float] = {}
        probs = [0.0] * 101
        V = len(trie.digit_start)
        for node in nodes:  # depth order: parents first
            logp[node] = float(root[node[0]]) if len(node) == 1 else logp[node[:-1]] + float(
                next_lsm[node[:-1]][node[-1]])
            n = trie.paths.get(node)
            if n is not None:
                cont = float(1.0 - next_lsm[node].exp()[:V][digit_start].sum().clamp(max=1.0))
                probs[n] += math.exp(logp[node]) * cont
        masked = root.clone()
        masked[: len(trie.piece_mask)][piece_mask] = -float("inf")
        top = None  # first readable candidate: skip partial UTF-8 bytes ("\ufffd") and bare whitespace
        for tid in masked.topk(20).indices.tolist():
            text = tokenizer.decode([tid])
            if text.strip() and "\ufffd" not in text:
                top = text
                break
    return {str(n): p for n, p in enumerate(probs)}, float(sum(probs)), top


def _model_fingerprint(manifest_path: Path) -> str:
    m = read_json(manifest_path)
    return hashlib.sha256(canonical_json(m).encode()).hexdigest()[:16]


def render_prompt_ids(tokenizer: Any, messages: list[dict], response_prefix: str | None = None) -> list[int]:
    """The judge model's chat template with the generation prompt, plus the start of its reply if given."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text + (response_prefix or ""), add_special_tokens=False)["input_ids"]


def run_hf(messages_list: list[list[dict]], spec: JudgeSpec, ledger: Ledger, model_manifest: str | Path,
           progress: bool = True) -> list[dict]:
    """Same result shape as `run_sync`; `response` holds `int_probs`, `int_mass`, `top_token`."""
    manifest = Path(model_manifest)
    params = {"method": METHOD, "prefixes": list(PREFIXES), "dtype": spec.hf_dtype,
              "manifest": _model_fingerprint(manifest)}
    if spec.response_prefix is not None:
        params["response_prefix"] = spec.response_prefix
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
            ids = render_prompt_ids(tok, messages, spec.response_prefix)
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
