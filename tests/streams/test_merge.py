"""The merge of a partition's events and feedback is one order, however records arrive."""

import heapq

from hypothesis import given
from hypothesis import strategies as st

from streams.merge import Merger
from streams.records import Record

EVENTS, FEEDBACK = "t.events", "t.feedback"
stamps = st.lists(st.integers(min_value=0, max_value=20), max_size=25)


@st.composite
def arrivals(draw):
    """Both topic-partitions' records, fetched in random slices in a random interleaving."""
    records = {topic: [Record(topic, 0, offset, b"k", b"v", ts)
                       for offset, ts in enumerate(draw(stamps))]
               for topic in (EVENTS, FEEDBACK)}
    slices = []
    for topic, items in records.items():
        start = 0
        while start < len(items):
            size = draw(st.integers(min_value=1, max_value=len(items) - start))
            slices.append((topic, items[start:start + size]))
            start += size
    order = draw(st.permutations(range(len(slices))))
    # each topic-partition's slices stay in offset order
    by_topic = {topic: [s for s in slices if s[0] == topic] for topic in records}
    picks = [slices[i][0] for i in order]
    fetched = [by_topic[topic].pop(0) for topic in picks]
    return records, fetched


def key(record: Record) -> tuple[int, int, int]:
    return (record.timestamp_ms, record.topic == FEEDBACK, record.offset)


@given(arrivals(), st.booleans())
def test_released_once_each_in_merge_order(arrival, one_by_one):
    records, fetched = arrival
    merger = Merger(EVENTS, FEEDBACK)
    merger.reset(0, {EVENTS: 0, FEEDBACK: 0})
    highwater = {topic: len(items) for topic, items in records.items()}
    out: list[Record] = []
    for topic, items in fetched:
        if one_by_one:
            merger.add(items)
        else:
            merger.extend(topic, 0, items)
        out += merger.ready(lambda topic, partition: highwater[topic])
    expected = list(heapq.merge(records[EVENTS], records[FEEDBACK], key=key))
    assert out == expected
