"""process_and_publish: parts are delivered while the next is processed, in order, and a
part counts as delivered only once the broker acknowledged all of its outputs."""

import asyncio

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.publish import process_and_publish
from streams.records import Record


def processor():
    from streams.processor import EventProcessor

    proc = EventProcessor(Settings(topic_prefix="t."), ModelRegistry(ModelsConfig.default(), 100))
    proc.partition(0)
    proc.partition(1)
    return proc


def records(n, partitions=(0,)):
    out, offsets = [], dict.fromkeys(partitions, 0)
    for i in range(n):
        p = partitions[i % len(partitions)]
        value = orjson.dumps({"event_id": f"e{i}", "model": "default",
                              "features": {"x": float(i % 7)}, "label": i % 2 == 0})
        out.append(Record("t.events", p, offsets[p], b"k", value, None))
        offsets[p] += 1
    return out


class RecordingSender:
    """Acknowledges each send after yielding; remembers, at each send, what the partition
    states said was delivered (must never include outputs not yet acknowledged)."""

    def __init__(self, proc, fail_at=None):
        self.proc = proc
        self.fail_at = fail_at
        self.calls = []
        self.acked = []

    async def send(self, outputs):
        delivered = {p: s.delivered for p, s in self.proc.partitions.items()}
        self.calls.append((len(outputs), delivered))
        await asyncio.sleep(0)
        if self.fail_at == len(self.calls):
            raise RuntimeError("broker said no")
        self.acked.extend(outputs)


def assert_all_delivered_and_in_step_with_the_acks(proc, sender, batch):
    """Every partition delivered up to its last record, and at each send, what the states
    said was delivered is exactly what the broker had acknowledged before it."""
    for p, state in proc.partitions.items():
        assert state.delivered == state.processed == max(
            (r.offset for r in batch if r.partition == p), default=-1)
    acked = 0
    for size, delivered in sender.calls:  # at each send: delivered == what was acked before
        for p, offset in delivered.items():
            before = [r for r in batch[:acked] if r.partition == p]
            assert offset == (before[-1].offset if before else -1)
        acked += size


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), chunks=st.integers(1, 5), two=st.booleans())
def test_every_output_sent_once_in_order_and_delivered_only_after_its_ack(n, chunks, two):
    proc = processor()
    batch = records(n, (0, 1) if two else (0,))
    sender = RecordingSender(proc)
    result, held = asyncio.run(process_and_publish(batch, proc, sender, 60.0, chunks=chunks,
                                                     min_split=1))
    assert held is None
    assert result.processed == n
    assert [o.value for o in sender.acked] == [o.value for o in result.outputs]
    assert len(result.outputs) == n and result.scored == {"default": n}
    assert_all_delivered_and_in_step_with_the_acks(proc, sender, batch)


def test_a_failed_first_part_fails_the_partitions_and_delivers_nothing():
    proc = processor()
    sender = RecordingSender(proc, fail_at=1)
    with pytest.raises(RuntimeError, match="broker said no"):
        asyncio.run(process_and_publish(records(10), proc, sender, 60.0, chunks=2, min_split=1))
    assert proc.partitions.get(0) is None  # learners reflected undelivered events
    assert sender.acked == []


def test_a_failed_second_part_keeps_nothing_past_the_first():
    proc = processor()
    state = proc.partitions.get(0)
    sender = RecordingSender(proc, fail_at=2)
    with pytest.raises(RuntimeError):
        asyncio.run(process_and_publish(records(10), proc, sender, 60.0, chunks=2, min_split=1))
    assert state.delivered == 4  # the first part's five events, acknowledged
    assert proc.partitions.get(0) is None


def test_a_small_slice_is_sent_in_one_part_and_a_large_one_in_two():
    proc = processor()
    sender = RecordingSender(proc)
    asyncio.run(process_and_publish(records(10), proc, sender, 60.0, chunks=2))
    assert [size for size, _ in sender.calls] == [10]
    proc = processor()
    sender = RecordingSender(proc)
    asyncio.run(process_and_publish(records(300), proc, sender, 60.0, chunks=2))
    assert [size for size, _ in sender.calls] == [150, 150]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 30), min_size=1, max_size=5), chunks=st.integers(1, 3),
       two=st.booleans())
def test_slices_held_in_flight_keep_order_and_count_as_delivered_only_after_their_ack(
        sizes, chunks, two):
    """Cross-slice overlap: each slice's last part is left in flight and settled by the next
    slice (after its first part is processed, before that part is sent) or at the end."""
    proc = processor()
    batch = records(sum(sizes), (0, 1) if two else (0,))
    sender = RecordingSender(proc)

    async def go():
        inflight, outputs, start = None, [], 0
        for size in sizes:
            result, inflight = await process_and_publish(
                batch[start:start + size], proc, sender, 60.0, chunks=chunks, min_split=1,
                carry=inflight, hold=True)
            start += size
            outputs += result.outputs
            assert inflight is not None  # the last part is not awaited ...
            held = inflight.result.last_offsets
            assert all(proc.partitions.get(p).delivered < o for p, o in held.items())
        await inflight.settle(proc.partitions)  # ... until the caller settles it
        return outputs
    outputs = asyncio.run(go())
    assert [o.value for o in sender.acked] == [o.value for o in outputs]
    assert len(outputs) == len(batch)
    assert_all_delivered_and_in_step_with_the_acks(proc, sender, batch)


def test_a_failed_send_in_flight_fails_the_partitions_of_both_slices():
    proc = processor()
    sender = RecordingSender(proc, fail_at=1)

    async def go():
        _, inflight = await process_and_publish(records(4, (0,)), proc, sender, 60.0,
                                                carry=None, hold=True)
        one = [Record("t.events", 1, 0, b"k", records(1)[0].value, None)]
        await process_and_publish(one, proc, sender, 60.0, carry=inflight, hold=True)
    with pytest.raises(RuntimeError, match="broker said no"):
        asyncio.run(go())
    # partition 0's learners reflect the unacknowledged slice, partition 1's the next one
    assert proc.partitions.get(0) is None and proc.partitions.get(1) is None
    assert sender.acked == []
