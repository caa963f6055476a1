"""Local judge: probability of each integer 0..100 as the judge model's whole answer, exact or with a known bound.

OpenAI gives only the first token's top-20 logprobs; locally we can do better. For an integer written as a token
sequence t1..tk (every tokenisation of the digit string, with or without one leading space),
P(n) = sum over tokenisations of prod_i P(t_i | prompt, t_<i) * P(next token does not start with a digit | prompt, t1..tk),
so "8" then "5" counts for 85, never for 8. All prefixes form a small trie (~200 nodes, depth <= 4); the prompt is
run once and the trie is scored level by level over the prompt's KV cache with a tree attention mask (one small
forward per depth) instead of 101 (or ~200) full forwards. Prefixes less probable than `prune_below` are not
expanded (after "Score: " about half of the ~200 nodes are): their total probability, `pruned_mass`, bounds
what is missed."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

from tqdm import tqdm

from emgrid.errors import JudgeError
from emgrid.io import canonical_json, read_json
from emgrid.judge.backends import JudgeRequest, JudgeResult, register_backend
from emgrid.judge.spec import JudgeSpec
from emgrid.llm import ResponseCache, request_key
from emgrid.models import load_model, load_tokenizer

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


def exact_int_probs(
    model: Any, tokenizer: Any, trie: IntTrie, prompt_ids: list[int], batch_size: int = 256, prune_below: float = 0.0
) -> tuple[dict[str, float], float, str | None]:
    """(P(n) for n in 0..100 as strings, their total, most probable first token that is not part of a number).

    One prompt through `int_probs_batch`; with `prune_below=0` every trie node is scored (exact).
    """
    r = int_probs_batch(model, tokenizer, trie, [prompt_ids], batch_size, prune_below)[0]
    return r["int_probs"], r["int_mass"], r["top_token"]


def cache_keyword(model: Any) -> str:
    """The forward's key/value-cache argument: `cache` since transformers 5.24, `past_key_values` before (the vLLM
    environment pins 5.20, docs/gpu.md); 5.24 still accepts the old name, with a deprecation warning."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(output: Any) -> Any:
    """The key/value cache a forward returned, under either name (see cache_keyword)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


class _TreeScorer:
    """The state of one `int_probs_batch` call: the prompts' KV cache, each node's log probability and cache column,
    and the integer probabilities found so far (one entry per prompt in every list)."""

    def __init__(self, model: Any, trie: IntTrie, prompts: list[list[int]], prune_below: float):
        import torch

        self.torch, self.model, self.trie = torch, model, trie
        self.dev = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.neg = torch.finfo(self.dtype).min
        self.B, self.lens = len(prompts), [len(p) for p in prompts]
        self.P = max(self.lens)
        self.pad = torch.tensor([[0] * (self.P - n) + [1] * n for n in self.lens], device=self.dev)
        self.digit_idx = torch.tensor([i for i, d in enumerate(trie.digit_start) if d], device=self.dev)
        self.prune_below = prune_below
        self.log_keep = math.log(prune_below) if prune_below > 0 else -math.inf
        self.logp: list[dict[tuple[int, ...], float]] = [{} for _ in prompts]
        self.col: list[dict[tuple[int, ...], int]] = [{} for _ in prompts]  # forwarded node -> its cache column
        self.probs = [[0.0] * 101 for _ in prompts]
        self.pruned = [0.0] * self.B
        self.T = 0  # tree tokens in the cache so far
        ids = torch.tensor([[0] * (self.P - len(p)) + list(p) for p in prompts], device=self.dev)
        out = model(
            input_ids=ids,
            attention_mask=self.pad,
            position_ids=(self.pad.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache, self.cache_kw = cache_of(out), cache_keyword(model)
        self.root = torch.log_softmax(out.logits[:, -1].float(), -1)

    def first_level(self) -> list[list[tuple[tuple[int, ...], float]]]:
        """(node, logprob) candidates of depth 1, per prompt."""
        first = list(self.trie.nodes_by_depth.get(1, []))
        first_lp = self.root[:, [n[0] for n in first]].tolist() if first else [[] for _ in range(self.B)]
        return [list(zip(first, first_lp[b])) for b in range(self.B)]

    def select(self, level: list[list[tuple[tuple[int, ...], float]]]) -> list[list[tuple[int, ...]]]:
        """Record the candidates' log probabilities and keep those not pruned; exact: with their whole subtrees, so
        the trie takes one forward (ancestors first)."""
        todo = []
        for b in range(self.B):
            keep = []
            for node, lp in level[b]:
                self.logp[b][node] = lp
                if lp < self.log_keep:
                    self.pruned[b] += math.exp(lp)
                else:
                    keep.append(node)
            if self.prune_below <= 0:
                stack, keep = keep, []
                while stack:
                    keep.extend(stack)
                    stack = [c for n in stack for c in self.trie.children.get(n, ())]
            todo.append(keep)
        return todo

    def _tree_inputs(self, chunk: list[list[tuple[int, ...]]], N: int):
        """Token ids, positions and the tree attention mask of one flattened wave of nodes per prompt: a node sees
        its prompt and its own ancestors, at its own position; padding rows see only themselves."""
        torch, P, T = self.torch, self.P, self.T
        mask = torch.full((self.B, 1, N, P + T + N), self.neg, dtype=self.dtype, device=self.dev)
        mask[:, 0, :, :P] = torch.where(self.pad[:, None, :] > 0, 0.0, self.neg).to(self.dtype)
        tok_ids = torch.zeros((self.B, N), dtype=torch.long, device=self.dev)
        pos = torch.zeros((self.B, N), dtype=torch.long, device=self.dev)
        for b, c in enumerate(chunk):
            for i, node in enumerate(c):
                self.col[b][node] = P + T + i
                for d in range(1, len(node) + 1):
                    mask[b, 0, i, self.col[b][node[:d]]] = 0
                tok_ids[b, i] = node[-1]
                pos[b, i] = self.lens[b] + len(node) - 1
            for i in range(len(c), N):
                mask[b, 0, i, P + T + i] = 0
        return tok_ids, pos, mask

    def forward(self, chunk: list[list[tuple[int, ...]]], child_lp: list[dict[tuple[int, ...], float]]) -> None:
        """Score one wave: children's log P(token | parent) into `child_lp`, completed integers into `probs`."""
        N = max(len(c) for c in chunk)
        if N == 0:
            return
        tok_ids, pos, mask = self._tree_inputs(chunk, N)
        logits = self.model(
            input_ids=tok_ids, attention_mask=mask, position_ids=pos, use_cache=True, **{self.cache_kw: self.cache}
        ).logits
        lsm = self.torch.log_softmax(logits.float(), -1)
        digit = lsm[..., self.digit_idx].exp().sum(-1).tolist()
        bi, ri, ti, kids = [], [], [], []
        for b, c in enumerate(chunk):
            for i, node in enumerate(c):
                for child in self.trie.children.get(node, ()):
                    bi.append(b)
                    ri.append(i)
                    ti.append(child[-1])
                    kids.append((b, child))
        for (b, child), lp in zip(kids, lsm[bi, ri, ti].tolist() if bi else []):
            child_lp[b][child] = lp
        for b, c in enumerate(chunk):
            for i, node in enumerate(c):  # ancestors come first, so a parent's logp is known
                if node not in self.logp[b]:
                    self.logp[b][node] = self.logp[b][node[:-1]] + child_lp[b][node]
                n = self.trie.paths.get(node)
                if n is not None:
                    self.probs[b][n] += math.exp(self.logp[b][node]) * max(0.0, 1.0 - digit[b][i])
        self.T += N

    def next_level(self, child_lp: list[dict[tuple[int, ...], float]]) -> list[list[tuple[tuple[int, ...], float]]]:
        return [
            [(c, self.logp[b][c[:-1]] + lp) for c, lp in child_lp[b].items() if c not in self.col[b]]
            for b in range(self.B)
        ]

    def top_tokens(self, tokenizer: Any) -> list[str | None]:
        """Per prompt, the first readable non-number candidate (skipping partial UTF-8 bytes and bare whitespace)."""
        masked = self.root.clone()
        masked[:, : len(self.trie.piece_mask)][:, self.torch.tensor(self.trie.piece_mask, device=self.dev)] = -float(
            "inf"
        )
        tops: list[str | None] = []
        for b in range(self.B):
            top = None
            for tid in masked[b].topk(20).indices.tolist():
                text = tokenizer.decode([tid])
                if text.strip() and "\ufffd" not in text:
                    top = text
                    break
            tops.append(top)
        return tops


def int_probs_batch(
    model: Any, tokenizer: Any, trie: IntTrie, prompts: list[list[int]], batch_size: int = 256, prune_below: float = 0.0
) -> list[dict[str, Any]]:
    """Per prompt `{"int_probs", "int_mass", "top_token", "pruned_mass"}`; prompts share every forward.

    The prompts go through one left-padded forward (KV cached), then the trie level by level (all levels in one
    wave when exact, since nothing depends on a parent's probability then): each wave's nodes are appended to
    the cache as one flattened sequence per prompt with a tree attention mask (a node sees its prompt and its own
    ancestors, at its own position), so nothing is recomputed or copied per branch. A node
    whose probability is below `prune_below` is not expanded: everything under it (itself included) has at most
    that probability, so the integer mass missed is at most `pruned_mass`, the sum over pruned nodes — the true
    P(n) lies in [int_probs[n], int_probs[n] + pruned_mass]. `prune_below=0` scores every node (exact).
    `batch_size` caps the tree nodes (summed over prompts' rows, i.e. prompts × nodes) per forward.
    """
    import torch

    with torch.inference_mode():
        s = _TreeScorer(model, trie, prompts, prune_below)
        level, step = s.first_level(), max(1, batch_size // len(prompts))
        while any(level):
            todo = s.select(level)
            child_lp: list[dict[tuple[int, ...], float]] = [{} for _ in prompts]
            for i in range(0, max(len(t) for t in todo), step):
                s.forward([t[i : i + step] for t in todo], child_lp)
            level = s.next_level(child_lp)
        tops = s.top_tokens(tokenizer)
    return [
        {
            "int_probs": {str(n): p for n, p in enumerate(s.probs[b])},
            "int_mass": float(sum(s.probs[b])),
            "top_token": tops[b],
            "pruned_mass": s.pruned[b],
        }
        for b in range(len(prompts))
    ]


def _model_fingerprint(manifest_path: Path) -> str:
    """The judge model's identity in the cache key. Cached weights are named by their content key, so where they
    live (`path`) is left out: moving the model cache must not re-judge."""
    m = read_json(manifest_path)
    if m.get("weights_key"):
        m.pop("path", None)
    return hashlib.sha256(canonical_json(m).encode()).hexdigest()[:16]


def render_prompt_ids(tokenizer: Any, messages: list[dict], response_prefix: str | None = None) -> list[int]:
    """The judge model's chat template with the generation prompt, plus the start of its reply if given."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text + (response_prefix or ""), add_special_tokens=False)["input_ids"]


@register_backend("hf")
class HFBackend:
    """A local model as judge; `response` holds `int_probs`, `int_mass`, `top_token`, `pruned_mass`.

    The key holds the method, the judge model's manifest fingerprint, the dtype and the reply prefix;
    `spec.hf_prune_below > 0` is part of it too, so pruned and exact results never mix. The model is loaded only
    when some request is not in the cache."""

    name = "hf"

    def __init__(self, spec: JudgeSpec, *, model_manifest: str | Path | None = None, client: Any = None):
        if model_manifest is None:
            raise JudgeError("judge.backend hf needs the judge model's manifest (model_manifest)")
        self.spec, self.manifest = spec, Path(model_manifest)
        self.params: dict[str, Any] = {
            "method": METHOD,
            "prefixes": list(PREFIXES),
            "dtype": spec.hf_dtype,
            "manifest": _model_fingerprint(self.manifest),
        }
        if spec.response_prefix is not None:
            self.params["response_prefix"] = spec.response_prefix
        if spec.hf_prune_below > 0:  # exact runs keep their old cache keys
            self.params["prune_below"] = spec.hf_prune_below

    def prepare(self, messages: list[dict]) -> JudgeRequest:
        key = request_key("hf", self.spec.model, messages, self.params)
        return JudgeRequest(key, messages, {"model": self.spec.model, "messages": messages, **self.params})

    def run(self, todo: list[JudgeRequest], cache: ResponseCache, progress: bool) -> dict[str, JudgeResult]:
        spec = self.spec
        tok = load_tokenizer(self.manifest)
        model = load_model(self.manifest, dtype=spec.hf_dtype)
        trie = IntTrie(tok, model.get_output_embeddings().weight.shape[0])
        out: dict[str, JudgeResult] = {}
        for r in tqdm(todo, desc=f"judge {spec.model} (local)", unit="prompt", disable=not progress):
            # One prompt per forward: batched, a prompt's padding and tree chunks depend on which other prompts
            # were left to judge, i.e. on what concurrent jobs had cached, and so do its last float bits (measured
            # 5e-7 relative). Alone, its scores are a function of the prompt; the CPU pays ~1.4x for it.
            p = render_prompt_ids(tok, r.messages, spec.response_prefix)
            response = int_probs_batch(model, tok, trie, [p], spec.batch_size, spec.hf_prune_below)[0]
            usage = {"prompt_tokens": len(p), "completion_tokens": 0}
            cache.put(r.key, r.payload, response, usage, backend="hf")
            out[r.key] = JudgeResult(r.key, response, usage)
        return out
