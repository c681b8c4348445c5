"""The checkpoint identity a commit carries: its format, and the loop putting it there."""

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from streams import commit_metadata
from streams.commit_metadata import Identity, LogPosition, decode, encode
from tests.streams.test_loop import assign, loop_record, make_loop, wait_until

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=30)
identities = st.builds(Identity, st.integers(0, 2**63 - 1),
                       st.binary(min_size=1, max_size=20).map(commit_metadata.digest))


@given(st.dictionaries(names, identities, max_size=20))
def test_metadata_round_trips_and_stays_under_kafkas_limit(ids):
    text = encode(ids)
    assert decode(text) == ids
    assert len(text.encode()) <= 4096


def test_too_many_models_are_refused_not_truncated():
    ids = {f"model-{i:04d}": Identity(10**12, "0" * 16) for i in range(200)}
    try:
        encode(ids)
    except ValueError as exc:
        assert "above 4000" in str(exc)
    else:
        raise AssertionError("metadata above Kafka's limit was accepted")


@given(st.one_of(st.text(max_size=50), st.none()))
def test_metadata_not_of_driftline_names_nothing(text):
    assert decode(text) is None or text.startswith("{")


def test_foreign_json_names_nothing():
    assert decode('{"v": 2, "m": {}}') is None
    assert decode('{"v": 1, "m": {"a": [1]}}') is None
    assert decode('[1, 2]') is None



def test_each_commit_names_the_checkpoint_that_covers_it():
    async def go():
        loop, consumer, _sender, store, cp = make_loop()
        seen = []
        original = consumer.commit

        async def commit(offsets):
            seen.extend((meta.offset, meta.metadata) for meta in offsets.values())
            await original(offsets)
        consumer.commit = commit
        cp.start()
        await assign(loop, 0)
        await loop.handle([loop_record(0, i) for i in range(3)])
        await wait_until(lambda: store.saved.get(0, {}).get("default", (None,))[0] == 2)
        await wait_until(lambda: loop.partitions.get(0).durable == 2)
        await loop.committer.commit()
        await cp.stop()
        return seen, store
    seen, store = asyncio.run(go())
    offset, metadata = seen[-1]
    blob = store.saved[0]["default"][1]
    assert offset == 3
    assert decode(metadata) == {"default": Identity(2, commit_metadata.digest(blob))}


def fit(policy, learners, position):
    loop, *_ = make_loop(checkpoint_unverifiable=policy)
    return loop.rebalancer._fit_log(0, learners, position), loop.metrics


def test_a_resume_offset_inside_the_log_changes_nothing():
    learner = object()
    (kept, seek), metrics = fit("stop", {"m": (99, learner)},
                                LogPosition(100, None, start=0, end=150))
    assert kept == {"m": (99, learner)} and seek is None
    assert metrics.offset_gaps.labels(partition="0")._value.get() == 0


def test_a_resume_offset_below_the_log_start_is_a_counted_gap():
    learner = object()
    (kept, seek), metrics = fit("stop", {"m": (99, learner), "n": (149, learner)},
                                LogPosition(150, None, start=130, end=400))
    assert kept.keys() == {"m", "n"} and seek == 130  # resumes after the lowest: 100
    assert metrics.offset_gaps.labels(partition="0")._value.get() == 1
    assert metrics.offset_gap_events.labels(partition="0")._value.get() == 30


def test_a_resume_offset_past_the_log_end_stops_or_starts_afresh():
    import pytest

    from streams.exceptions import ServiceError
    position = LogPosition(300, None, start=0, end=100)
    with pytest.raises(ServiceError, match=r"^partition 0: the checkpoint resumes at offset "
                                           r"300, past the log end 100 .*; stopping"):
        fit("stop", {"default": (299, object())}, position)
    (kept, seek), metrics = fit("fresh", {"default": (299, object())}, position)
    assert kept == {} and seek == 0
    assert metrics.offset_out_of_range.labels(partition="0")._value.get() == 1
    assert metrics.fresh_starts.labels(model="default")._value.get() == 1
    (kept, seek), _ = fit("stop", {}, LogPosition(None, None, start=0, end=0))
    assert kept == {} and seek is None  # nothing committed, nothing restored: no opinion
