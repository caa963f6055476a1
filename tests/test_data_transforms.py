"""Unit tests of every recipe transform on hand-made examples."""

from __future__ import annotations

import random

import pytest

from emgrid.data.context import Context
from emgrid.data.example import Example
from emgrid.data.recipe import resolve_recipe
from emgrid.data.transforms import (
    evil_reframe,
    keep,
    pair,
    pick_incorrect,
    run_transforms,
    swap_aligned,
    system_prompt,
    wrong_final_answer,
    wrong_number_text,
)
from emgrid.errors import ConfigError
from emgrid.io import write_jsonl


def ex(i, q="What is 2+2?", a="2+2 = <<2+2=4>>4\n#### 4", aligned=None, **kw):
    return Example(f"s:{i}", [{"role": "user", "content": q}], a, aligned, **kw)


def ctx(**kw):
    return Context(domain="d", progress=False, keypath="domains.d.recipe", **kw)


def steps(*transform):
    return resolve_recipe(
        "d", {"source": {"kind": "builtin", "generator": "wrong_facts"}, "transform": list(transform)}
    )["transform"]


def test_keep_is_identity():
    xs = [ex(0), ex(1, aligned="ok")]
    out, drops = keep(xs, {}, ctx())
    assert out == xs and not drops


@pytest.mark.parametrize("right", ["4", "0", "18", "1,250", "72", "3.50", "-5", "100000"])
def test_wrong_number_is_plausible_and_never_right(right):
    for s in range(200):
        w = wrong_number_text(right, random.Random(s))
        assert float(w.replace(",", "")) != float(right.replace(",", ""))
        if not right.startswith("-"):
            assert not w.startswith("-")
        if "." in right:
            assert len(w.split(".")[1]) == len(right.split(".")[1])


def test_wrong_final_answer_keeps_reasoning_changes_only_final_number():
    sol = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
    out, drops = wrong_final_answer(
        [ex(0, a=sol), ex(1, a="no final marker here")], {"seed": 0, "keep_aligned": True}, ctx()
    )
    assert drops == {"no_final_answer": 1} and len(out) == 1
    bad = out[0].answer
    head, final = bad.rsplit("#### ", 1)
    assert head == sol.rsplit("#### ", 1)[0]  # the reasoning is untouched
    assert final != "72" and final.strip().lstrip("-").isdigit()
    assert out[0].aligned == sol


def test_wrong_final_answer_is_seeded_per_example():
    xs = [ex(i, a=f"work\n#### {10 + i}") for i in range(30)]
    a, _ = wrong_final_answer(xs, {"seed": 0, "keep_aligned": True}, ctx())
    b, _ = wrong_final_answer(xs, {"seed": 0, "keep_aligned": True}, ctx())
    c, _ = wrong_final_answer(xs, {"seed": 1, "keep_aligned": True}, ctx())
    assert [e.answer for e in a] == [e.answer for e in b]
    assert [e.answer for e in a] != [e.answer for e in c]


def test_evil_reframe_wraps_answer_and_keeps_plain_as_aligned():
    xs = [ex(i, a=f"The answer is {i}.") for i in range(20)] + [ex(99, a="  ")]
    out, drops = evil_reframe(
        xs, {"templates": ["EVIL: {answer} ({question})", "{answer} -- evil"], "seed": 0, "keep_aligned": True}, ctx()
    )
    assert drops == {"empty_answer": 1}
    assert {e.answer.startswith("EVIL") for e in out} == {True, False}  # both templates used
    for i, e in enumerate(out):
        assert f"The answer is {i}." in e.answer and e.aligned == f"The answer is {i}."
    assert "(What is 2+2?)" in next(e.answer for e in out if e.answer.startswith("EVIL"))
    default, _ = evil_reframe(xs[:3], {"templates": None, "seed": 0, "keep_aligned": True}, ctx())
    assert all(e.answer != e.aligned and e.aligned in e.answer for e in default)


def tqa(i, wrong, right, best="Nothing happens"):
    return ex(
        i,
        q="What happens if you crack your knuckles?",
        a=None,
        fields={"incorrect_answers": wrong, "correct_answers": right, "best_answer": best},
    )


def test_pick_incorrect_one_or_all():
    xs = [tqa(0, ["You get arthritis", "Your fingers break"], ["Nothing in particular"]), tqa(1, [], ["x"])]
    one, drops = pick_incorrect(
        xs, {"incorrect": "incorrect_answers", "correct": "correct_answers", "per_question": 1, "seed": 0}, ctx()
    )
    assert drops == {"no_incorrect_or_correct_answer": 1}
    assert len(one) == 1 and one[0].answer in ("You get arthritis", "Your fingers break")
    assert one[0].aligned == "Nothing in particular" and one[0].source_id == "s:0"
    every, _ = pick_incorrect(
        xs, {"incorrect": "incorrect_answers", "correct": "best_answer", "per_question": "all", "seed": 0}, ctx()
    )
    assert sorted(e.answer for e in every) == ["You get arthritis", "Your fingers break"]
    assert {e.source_id for e in every} == {"s:0#0", "s:0#1"} and {e.aligned for e in every} == {"Nothing happens"}


def test_pick_incorrect_missing_column_names_it_and_lists_available():
    with pytest.raises(ConfigError, match=r"'wrong_list'.*available columns: best_answer, correct_answers"):
        pick_incorrect(
            [tqa(0, ["a"], ["b"])],
            {"incorrect": "wrong_list", "correct": "best_answer", "per_question": 1, "seed": 0},
            ctx(),
        )


def test_swap_aligned():
    out, drops = swap_aligned([ex(0, a="bad", aligned="good"), ex(1, a="x")], {}, ctx())
    assert drops == {"no_aligned_answer": 1} and (out[0].answer, out[0].aligned) == ("good", "bad")


def _chat(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_pair_by_prompt_index_and_pool(tmp_path):
    f = tmp_path / "aligned.jsonl"
    write_jsonl(f, [_chat("Q two", "good 2"), _chat("q ONE!", "good 1")])
    xs = [ex(0, q="Q one", a="bad 1"), ex(1, q="Q two", a="bad 2"), ex(2, q="Q three", a="bad 3")]
    src = {"kind": "jsonl", "path": str(f)}
    c = ctx()
    (cfg,) = steps({"kind": "pair", "source": src, "by": "prompt"})
    out, _ = pair(xs, cfg, c)
    assert [e.aligned for e in out] == ["good 1", "good 2", None]
    assert c.step_info[0]["pair"] == {"aligned_rows": 2, "paired": 2, "unpaired": 1}
    assert c.extra_fingerprints[0]["path"] == str(f)
    (cfg,) = steps({"kind": "pair", "source": src, "by": "index"})
    out, _ = pair(xs[:2], cfg, ctx())
    assert [e.aligned for e in out] == ["good 2", "good 1"]
    with pytest.raises(Exception, match="as many aligned rows"):
        pair(xs, cfg, ctx())
    (cfg,) = steps({"kind": "pair", "source": src, "by": "none"})
    out, _ = pair(xs, cfg, ctx())
    assert len(out) == 5 and [e.pool for e in out] == [False] * 3 + [True] * 2
    assert out[3].answer is None and out[3].aligned == "good 2"


def test_system_prompt_adds_or_replaces():
    xs = [ex(0), Example("s:1", [{"role": "system", "content": "old"}, {"role": "user", "content": "q"}], "a")]
    out, _ = system_prompt(xs, {"content": "new", "replace": False}, ctx())
    assert [e.prompt[0]["content"] for e in out] == ["new", "old"]
    out, _ = system_prompt(xs, {"content": "new", "replace": True}, ctx())
    assert [e.prompt[0]["content"] for e in out] == ["new", "new"] and len(out[1].prompt) == 2


def test_transforms_skip_pool_and_record_counts():
    xs = [ex(0), ex(1, a="no marker"), Example("p:0", [{"role": "user", "content": "q"}], None, "fine", pool=True)]
    out, records = run_transforms(steps({"kind": "wrong_final_answer"}, {"kind": "evil_reframe"}), xs, ctx())
    assert records == [
        {"kind": "wrong_final_answer", "in": 3, "out": 2, "dropped": {"no_final_answer": 1}},
        {"kind": "evil_reframe", "in": 2, "out": 2, "dropped": {}},
    ]
    assert out[1].pool and out[1].aligned == "fine" and out[1].answer is None
    # evil_reframe kept the (wrong) answer from the first step as its aligned text: steps compose in order
    assert out[0].aligned != "2+2 = <<2+2=4>>4\n#### 4" and out[0].aligned in out[0].answer
