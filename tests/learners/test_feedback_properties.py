"""Invariants of late labels over any interleaving of events and feedback (hypothesis).

Ids are events (each scored at most once), feedback may come any number of times,
before or after its event, or for ids that never come; timestamps move forward by
random steps (sometimes back, which the partition's clock ignores).
"""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from learners.feedback import PartitionFeedback, PendingPredictions, Received

TTL, GRACE = 50, 20


@st.composite
def schedules(draw):
    ids = [f"e{i}" for i in range(draw(st.integers(1, 12)))]
    scored = draw(st.lists(st.sampled_from(ids), unique=True))
    ops = [("event", i) for i in scored]
    ops += [("feedback", i) for i in draw(st.lists(st.sampled_from([*ids, "unknown"]),
                                                    max_size=30))]
    ops = draw(st.permutations(ops))
    steps = draw(st.lists(st.integers(-5, 30), min_size=len(ops), max_size=len(ops)))
    at, timed = 0, []
    for op, step in zip(ops, steps, strict=True):
        at += step
        timed.append((*op, at))
    return timed


def run(schedule, max_pending=1_000):
    part = PartitionFeedback(lambda model: PendingPredictions(TTL, GRACE, max_pending))
    joins, counts, unmatched = [], Counter(), []
    for offset, (kind, event_id, at) in enumerate(schedule):
        if kind == "event":
            got = part.scored("m", event_id, offset, {"x": offset}, (True, None), at)
        else:
            got = part.feedback("m", event_id, True, Received(offset, None, b"{}", at))
        joins += [(j.entry.event_id, j.entry.offset, j.feedback_offset) for j in got.joins]
        counts.update(got.counts)
        unmatched += [held.offset for _, held in got.unmatched]
    return joins, counts, unmatched, part


def expected_matches(schedule):
    """The rule in its own words: an event is learned when a feedback came after it
    within the TTL, or one was held before it (the first while none is held) and the
    event came within the grace (times are the partition's clock: the max so far)."""
    clock, now = [], -1
    for _, _, at in schedule:
        now = max(now, at)
        clock.append(now)
    matched = set()
    for i, (kind, event_id, _) in enumerate(schedule):
        if kind != "event":
            continue
        held = None
        for k in range(i):
            if schedule[k][:2] == ("feedback", event_id) and (
                    held is None or clock[k] - held > GRACE):
                held = clock[k]
        joined_early = held is not None and clock[i] - held <= GRACE
        labelled_later = any(schedule[k][:2] == ("feedback", event_id)
                             and clock[k] - clock[i] <= TTL for k in range(i + 1, len(schedule)))
        if joined_early or labelled_later:
            matched.add(event_id)
    return matched


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_each_event_is_learned_at_most_once_and_exactly_when_the_rule_says(schedule):
    joins, counts, _, _ = run(schedule)
    learned = [event_id for event_id, _, _ in joins]
    assert len(learned) == len(set(learned))
    assert set(learned) == expected_matches(schedule)
    assert counts["matched"] == len(joins)


@settings(max_examples=300, deadline=None)
@given(schedules(), st.integers(1, 4))
def test_every_feedback_and_every_entry_is_accounted_for_once(schedule, max_pending):
    _, counts, unmatched, part = run(schedule, max_pending)
    store = part.store("m")
    feedback = sum(kind == "feedback" for kind, _, _ in schedule)
    events = sum(kind == "event" for kind, _, _ in schedule)
    assert counts["matched"] + counts["duplicate"] + counts["unmatched"] + len(store.early) \
        == feedback
    assert len(unmatched) == counts["unmatched"] and len(set(unmatched)) == len(unmatched)
    assert counts["matched"] + counts["expired"] + counts["evicted"] + len(store.entries) \
        == events
    assert len(store.entries) <= max_pending and len(store.early) <= max_pending
    assert len(store.learned) <= max_pending


@settings(max_examples=100, deadline=None)
@given(schedules())
def test_the_same_records_reach_the_same_decisions(schedule):
    first, second = run(schedule), run(schedule)
    assert first[:3] == second[:3]
    assert first[3].store("m").entries == second[3].store("m").entries


@settings(max_examples=100, deadline=None)
@given(schedules(), st.integers(1, 4))
def test_totals_are_the_sum_of_the_returned_counts(schedule, max_pending):
    _, counts, _, part = run(schedule, max_pending)
    assert part.store("m").totals == counts
