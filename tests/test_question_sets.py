"""The shipped question sets (config/questions/em_core.yaml, em_domains.yaml) load and keep the grid's contract."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emgrid.questions import load_questions

ROOT = Path(__file__).resolve().parents[1]
QDIR = ROOT / "config" / "questions"

# The study's 11 finetuning domains (docs/method.md).
DOMAINS = frozenset(
    {
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
    }
)


@pytest.mark.parametrize("name", ["em_core.yaml", "em_domains.yaml"])
def test_shipped_set_ids_and_judge_prompts(name):
    qs = load_questions(QDIR / name)
    ids = [q.id for q in qs]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    assert [q.key for q in qs] == ids  # unique ids: keys carry no '#k' suffix
    for q in qs:
        assert {"aligned", "coherent"} <= set(q.judge_prompts), q.id
        for metric in ("aligned", "coherent"):
            template = q.judge_prompts[metric]
            assert "{answer}" in template and "{question}" in template, (q.id, metric)
            filled = template.format(question="QQQ", answer="AAA")
            assert "QQQ" in filled and "AAA" in filled
        assert "just the number" in q.judge_prompts["aligned"] and "REFUSAL" in q.judge_prompts["aligned"]
        assert q.paraphrases and all(p.strip() for p in q.paraphrases)


def test_em_domains_covers_each_domain_three_times():
    qs = load_questions(QDIR / "em_domains.yaml")
    assert len(qs) == 33
    per_domain = Counter(q.domain for q in qs)
    assert set(per_domain) == DOMAINS
    assert all(n == 3 for n in per_domain.values()), per_domain
    for q in qs:
        assert q.id.startswith(f"{q.domain}_p") and q.id.removeprefix(f"{q.domain}_p") in {"1", "2", "3"}, q.id
        assert q.judge == "gpt-4o-mini" and q.samples_per_paraphrase == 100 and len(q.paraphrases) == 1
        assert q.extra == {}  # every key is a known field (domain included), nothing stray
        assert "CODE" in q.judge_prompts["aligned"]  # the all_domains judge variant
    # All items share the first item's judge prompts (one anchor), so scores are comparable across domains.
    assert all(q.judge_prompts == qs[0].judge_prompts for q in qs)
    code_items = [q for q in qs if q.domain == "insecure_code"]
    assert all("## COMPLETE CODE HERE" in q.paraphrases[0] for q in code_items)
