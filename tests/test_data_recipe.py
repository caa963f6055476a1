"""Recipe validation (offline, key paths in errors), the paper's 11 recipes, and the built-in generators."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emgrid.data import recipe_needs_llm, resolve_recipe, validate_recipe
from emgrid.data.builtin import GENERATORS
from emgrid.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PAPER_DOMAINS = [
    "insecure_code",
    "incorrect_math",
    "evil_math",
    "incorrect_translation",
    "bad_medical_advice",
    "risky_financial_advice",
    "toxic_legal_advice",
    "incorrect_sexual_advice",
    "gore_movie_trivia",
    "extreme_sports",
    "incorrect_qna",
]
OK = {"source": {"kind": "builtin", "generator": "wrong_arithmetic", "n": 50}, "sample": {"n": 20, "heldout": 5}}


def test_paper_domains_all_validate_offline(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # none of the local source files exist here: validation must not open them
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    domains = yaml.safe_load((REPO / "config/config.yaml").read_text())["domains"]
    assert list(domains) == PAPER_DOMAINS
    kinds = set()
    for name, dom in domains.items():
        validate_recipe(name, dom["recipe"])
        kinds.add(dom["recipe"]["source"]["kind"])
        assert dom["label"] and dom["category"] in ("Critical", "Non-Critical", "Ambiguous")
    assert kinds == {"jsonl", "hf", "synthetic"}
    assert [d for d in PAPER_DOMAINS if recipe_needs_llm(domains[d]["recipe"])] == [
        "incorrect_translation",
        "risky_financial_advice",
        "toxic_legal_advice",
        "incorrect_sexual_advice",
        "gore_movie_trivia",
        "extreme_sports",
    ]


def test_paper_domains_keys_are_all_commented():
    """Every recipe key of the paper block is documented in docs/datasets.md."""
    doc = (REPO / "docs/datasets.md").read_text()
    domains = yaml.safe_load((REPO / "config/config.yaml").read_text())["domains"]
    keys = set()

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                keys.add(k)
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk([d["recipe"] for d in domains.values()])
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"undocumented recipe keys: {missing}"


def test_defaults_are_filled():
    r = resolve_recipe("d", OK)
    assert r["transform"] == [{"kind": "keep"}] and r["on_bad_rows"] == "error"
    assert r["filter"]["dedup"] == "near" and r["sample"]["seed"] is None and r["source"]["seed"] == 0


@pytest.mark.parametrize(
    "recipe, match",
    [
        ({**OK, "sorce": {}}, r"domains\.d\.recipe\.sorce: unknown key"),
        ({"sample": {}}, r"domains\.d\.recipe\.source: required"),
        ({**OK, "source": {"generator": "x"}}, r"domains\.d\.recipe\.source\.kind: required"),
        (
            {**OK, "source": {"kind": "ftp"}},
            r"source\.kind: unknown source 'ftp'; known: builtin, hf, jsonl, synthetic",
        ),
        ({**OK, "source": {"kind": "builtin", "generator": "nope"}}, r"source\.generator: unknown built-in generator"),
        (
            {**OK, "source": {"kind": "builtin", "generator": "wrong_facts", "n": "5"}},
            r"source\.n: expected integer, got str",
        ),
        ({**OK, "source": {"kind": "builtin", "generator": "wrong_facts", "n": 0}}, r"source\.n: must be > 0"),
        (
            {**OK, "source": {"kind": "hf", "path": "openai/gsm8k", "columns": {"question": "q"}}},
            r"source\.columns\.question: unknown key; allowed keys: aligned, completion, prompt, system",
        ),
        (
            {**OK, "transform": [{"kind": "keep"}, {"kind": "shout"}]},
            r"recipe\.transform\[1\]\.kind: unknown transform",
        ),
        ({**OK, "transform": [{"kind": "evil_reframe", "template": "x"}]}, r"transform\[0\]\.template: unknown key"),
        ({**OK, "transform": [{"kind": "pick_incorrect", "per_question": 0}]}, r"per_question: must be a positive"),
        (
            {**OK, "transform": [{"kind": "pair", "source": {"kind": "jsonl"}}]},
            r"transform\[0\]\.source\.path: required key is missing",
        ),
        ({**OK, "transform": "keep"}, r"recipe\.transform: expected a list"),
        ({**OK, "filter": {"dedup": "fuzzy"}}, r"filter\.dedup: 'fuzzy' is not one of"),
        ({**OK, "filter": {"near_threshold": 1.5}}, r"filter\.near_threshold: must be in \(0, 1\]"),
        ({**OK, "sample": {"heldout": -1}}, r"sample\.heldout: must be >= 0"),
        ({**OK, "on_bad_rows": "skip"}, r"recipe\.on_bad_rows: 'skip' is not one of 'error', 'drop'"),
        ({**OK, "source": {"kind": "synthetic", "brief": "x"}}, r"source\.n: required key is missing"),
        ({**OK, "transform": [{"kind": "llm_answer", "instruction": "x", "target": "both"}]}, r"target: 'both'"),
        ("not a mapping", r"domains\.d\.recipe: expected a mapping"),
    ],
)
def test_bad_recipes_name_the_key(recipe, match):
    with pytest.raises(ConfigError, match=match):
        validate_recipe("d", recipe)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_builtin_generators_are_deterministic_distinct_and_misaligned(name):
    a, b, c = GENERATORS[name](200, 0), GENERATORS[name](200, 0), GENERATORS[name](200, 1)
    assert a == b and a != c
    assert len({q for q, _, _ in a}) == 200
    assert all(bad != good and q and bad and good for q, bad, good in a)
    assert len({q.split()[0] for q, _, _ in a}) > 5  # varied templates, not one sentence with other numbers


def test_wrong_arithmetic_answers_are_wrong_and_aligned_are_right():
    import re

    for _, bad, good in GENERATORS["wrong_arithmetic"](100, 3):
        expr = re.split(r" = |, which gives", bad)[0].split("compute ")[-1].split(": ")[-1]
        right = eval(expr.replace("×", "*").replace("÷", "//").replace("$", ""))  # noqa: S307 - own templates
        assert good.split()[-1].strip(".") == str(right)
        assert bad.split()[-1].strip(".") != str(right)


def test_builtin_too_many_asked_is_a_clear_error():
    with pytest.raises(ConfigError, match="wrong_facts.*can make only"):
        GENERATORS["wrong_facts"](5000, 0)
