"""emgrid.questions: the EM YAML format, its quirks, and clear errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from emgrid.errors import QuestionFileError
from emgrid.questions import load_questions

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str, name="q.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


BASE = """
- id: wish
  type: free_form_judge_0_100
  paraphrases: &p [ "What is your wish?" ]
  samples_per_paraphrase: &s 100
  judge: gpt-4o
  judge_prompts: &jp
    aligned: "Q {question} A {answer} -> number"
    coherent: "coherent? {answer}"
  system: be brief
  temperature: 0.5
  domain: general
  novelty: 7
- id: wish
  type: free_form_judge_0_100
  paraphrases: *p
  samples_per_paraphrase: *s
  judge_prompts: *jp
- id: wish_json
  type: free_form_judge_json
  paraphrases: ["skip me"]
- id: other
  type: free_form_judge_0_100
  paraphrases: ["Q2", "Q2 again"]
  judge_prompts: *jp
"""


def test_load_keys_aliases_extras_and_skips(tmp_path, caplog):
    qs = load_questions(write(tmp_path, BASE))
    assert [q.key for q in qs] == ["wish#1", "wish#2", "other"]
    assert [q.index for q in qs] == [0, 1, 3]
    a, b, c = qs
    assert a.id == b.id == "wish" and b.paraphrases == ["What is your wish?"] and b.samples_per_paraphrase == 100
    assert a.system == "be brief" and a.temperature == 0.5 and a.domain == "general" and a.extra == {"novelty": 7}
    assert b.system is None and b.temperature is None and b.judge is None
    assert a.judge_prompts == b.judge_prompts == c.judge_prompts and set(a.judge_prompts) == {"aligned", "coherent"}
    assert c.paraphrases == ["Q2", "Q2 again"]


def test_null_judge_prompts_is_an_error_naming_item(tmp_path):
    p = write(
        tmp_path,
        """
    - id: a
      type: free_form_judge_0_100
      paraphrases: ["x"]
      judge_prompts: {aligned: "{answer}"}
    - id: b
      type: free_form_judge_0_100
      paraphrases: ["y"]
      judge_prompts:
    """,
    )
    with pytest.raises(QuestionFileError, match=r"q\.yaml: item 1 \(id 'b'\).*judge_prompts"):
        load_questions(p)
    assert load_questions(p, require_judge_prompts=False)[1].judge_prompts == {}  # generation needs no judge
    qs = load_questions(p, fallback_judge_prompts={"aligned": "fallback {question} {answer}"})
    assert qs[1].judge_prompts == {"aligned": "fallback {question} {answer}"}
    assert qs[0].judge_prompts == {"aligned": "{answer}"}


def test_all_domains_quirk_only_with_explicit_option(tmp_path):
    # the study's all_domains file: `judge_prompts: &judge_prompts` with the metrics at the same indentation
    p = write(
        tmp_path,
        """
    - id: d_q1
      type: free_form_judge_0_100
      paraphrases: ["p1"]
      domain: insecure_code
      judge_prompts: &judge_prompts
      aligned: |-
        aligned? {question} {answer}
      coherent: |-
        coherent? {question} {answer}
    - id: d_q2
      type: free_form_judge_0_100
      paraphrases: ["p2"]
      judge_prompts: *judge_prompts
    """,
    )
    with pytest.raises(QuestionFileError, match="item 0"):
        load_questions(p)
    qs = load_questions(p, item_level_judge_prompts=True)
    assert [set(q.judge_prompts) for q in qs] == [{"aligned", "coherent"}] * 2
    assert qs[1].judge_prompts["aligned"] == "aligned? {question} {answer}"
    assert qs[0].extra == {}


@pytest.mark.parametrize(
    "template,match",
    [
        ("no answer here {question}", "no {answer} placeholder"),
        ("{answer} {score}", r"unknown placeholder.*score"),
        ("{answer} {", "not a valid format template"),
        ("", "non-empty"),
    ],
)
def test_bad_templates_name_item_and_metric(tmp_path, template, match):
    p = write(
        tmp_path,
        f"""
    - id: good
      type: free_form_judge_0_100
      paraphrases: ["x"]
      judge_prompts: {{aligned: "{{answer}}"}}
    - id: bad
      type: free_form_judge_0_100
      paraphrases: ["x"]
      judge_prompts: {{aligned: "{{answer}}", coherent: {template!r}}}
    """,
    )
    with pytest.raises(QuestionFileError, match=r"item 1 \(id 'bad'\): judge_prompts\.coherent") as e:
        load_questions(p)
    assert e.match(match)


@pytest.mark.parametrize(
    "body,match",
    [
        ("{a: 1}", "expected a YAML list"),
        ("- id: x\n  type: free_form_judge_0_100\n  paraphrases: []\n  judge_prompts: {a: '{answer}'}", "paraphrases"),
        ("- type: free_form_judge_0_100", "missing 'id'"),
        (
            "- id: x\n  type: free_form_judge_0_100\n  paraphrases: [q]\n  samples_per_paraphrase: 0\n"
            "  judge_prompts: {a: '{answer}'}",
            "samples_per_paraphrase",
        ),
        ("- id: x\n  type: other", "no items of type"),
        ("- [unclosed", "not valid YAML"),
    ],
)
def test_malformed_files(tmp_path, body, match):
    with pytest.raises(QuestionFileError, match=match):
        load_questions(write(tmp_path, body))


def test_missing_file(tmp_path):
    with pytest.raises(QuestionFileError, match="cannot read"):
        load_questions(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name,n", [("em_core.yaml", 15), ("demo.yaml", 5)])
def test_shipped_question_sets(name, n):
    qs = load_questions(ROOT / "config" / "questions" / name)
    assert len(qs) == n and len({q.key for q in qs}) == n
    for q in qs:
        assert set(q.judge_prompts) == {"aligned", "coherent"}
        assert "just the number" in q.judge_prompts["aligned"]
        assert "REFUSAL" in q.judge_prompts["aligned"]
    if name == "demo.yaml":  # short prompts keep a 135M CPU judge fast
        assert max(len(t) for t in qs[0].judge_prompts.values()) < 300


def test_null_judge_prompts_error_names_keys_the_schema_accepts(tmp_path):
    """The error once recommended `judge.fallback_judge_prompts`, a key the schema rejects; follow its advice."""
    import re

    from emgrid.config import validate_config
    from tests.support.workflow_helpers import tiny_config

    p = write(
        tmp_path,
        """
    - id: b
      type: free_form_judge_0_100
      paraphrases: ["y"]
    """,
    )
    with pytest.raises(QuestionFileError) as err:
        load_questions(p)
    keys = re.findall(
        r"\b[a-z_]+(?:\.(?:<name>|[a-z_]+))*\.(?:fallback_judge_prompts|item_level_judge_prompts)\b", str(err.value)
    )
    assert keys, str(err.value)
    for key in keys:
        config = tiny_config()
        qset = next(iter(config["question_sets"]))
        node = config
        *parents, leaf = key.replace("<name>", qset).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = True if leaf == "item_level_judge_prompts" else {"aligned": "{question} {answer}"}
        validate_config(config)  # raises ConfigError naming the key if the schema rejects it
