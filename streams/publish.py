"""Consume -> process -> publish for one slice of records, bounded in time.

Processes records (each of an active partition) until ``batch_max_seconds`` of
model work is spent and sends the outputs; a part is marked delivered only once the
broker has all of its outputs. The slice is processed in ``chunks`` parts, and the
outputs of one part are delivered while the next is processed (the broker's
acknowledgement of a batch took ~14% of the loop's time when it was awaited idle).
The last part of a slice can be left in flight (``hold``): the loop then processes
the next slice while the broker acknowledges it, and settles it before that slice's
first part is sent (one send at a time, so every partition's outputs keep their
order). A snapshot taken meanwhile reflects undelivered events; it is written only
once delivery covers it (:meth:`streams.commits.Committer.release`), so a checkpoint
reflects only delivered events. If a send fails, the partitions involved fail: their
learners reflect events whose outputs may be lost, so they are dropped and never
checkpointed.
"""

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from learners.partition_state import Partitions
from streams.processor import BatchResult, EventProcessor
from streams.records import Output, Record


class Sender(Protocol):
    """Publishes outputs and returns once the broker acknowledged all of them."""

    async def send(self, outputs: list[Output]) -> None:
        """Publish ``outputs`` in order; raise if any is not acknowledged."""


#: A slice of fewer records is sent in one part: splitting it only adds a second wait for
#: the broker's acknowledgement to the latency of its last events (overlap pays off on
#: large slices, when the loop is behind).
MIN_SPLIT = 256

#: BatchResult fields that hold a position per partition (the later result's wins), not counts.
_LATEST = frozenset({"last_offsets", "last_feedback_offsets"})


def merge(a: BatchResult, b: BatchResult) -> BatchResult:
    """The result of processing ``a``'s records then ``b``'s: outputs and times
    concatenated, counts added, the last offset of each partition the later one.

    >>> one = BatchResult([], 2, {0: 5}, scored={"m": 2}, last_feedback_offsets={0: 7})
    >>> two = BatchResult([], 1, {0: 6, 1: 0}, scored={"m": 1}, dead={"x": 1},
    ...                   last_feedback_offsets={0: 9})
    >>> r = merge(one, two)
    >>> r.processed, dict(r.last_offsets), dict(r.scored), dict(r.dead)
    (3, {0: 6, 1: 0}, {'m': 3}, {'x': 1})
    >>> dict(r.last_feedback_offsets)
    {0: 9}
    """
    values: dict[str, Any] = {}
    for f in fields(BatchResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in _LATEST:
            values[f.name] = {**x, **y}
        elif isinstance(x, int):
            values[f.name] = x + y
        elif isinstance(x, Mapping):
            counts = dict(x)
            for key, n in y.items():
                counts[key] = counts.get(key, 0) + n
            values[f.name] = counts
        elif isinstance(x, list):
            values[f.name] = x + list(y)
        else:
            values[f.name] = tuple(x) + tuple(y)
    return BatchResult(**values)


def _deliver(partitions: Partitions, result: BatchResult) -> None:
    for partition, offset in result.last_offsets.items():
        state = partitions.active(partition)
        if state is not None:
            state.deliver(offset)
    for partition, offset in result.last_feedback_offsets.items():
        state = partitions.active(partition)
        if state is not None:
            state.deliver_feedback(offset)


def _partitions(result: BatchResult) -> set[int]:
    return set(result.last_offsets) | set(result.last_feedback_offsets)


@dataclass
class InFlight:
    """The last part of a slice: its outputs handed to the producer, their
    acknowledgement not awaited yet (:func:`process_and_publish` with ``hold``)."""

    sending: asyncio.Future[None]
    result: BatchResult

    async def settle(self, partitions: Partitions) -> None:
        """Wait for the acknowledgement, then mark the part delivered.

        Raises:
            Exception: what the send raised; the part's partitions have failed.
        """
        try:
            await self.sending
        except BaseException:
            for partition in _partitions(self.result):
                partitions.fail(partition)
            raise
        _deliver(partitions, self.result)


async def process_and_publish(records: Sequence[Record], processor: EventProcessor,
                              sender: Sender, max_seconds: float,
                              chunks: int = 2, min_split: int = MIN_SPLIT,
                              carry: InFlight | None = None,
                              hold: bool = False) -> tuple[BatchResult, InFlight | None]:
    """Process a prefix of ``records`` (all, unless ``max_seconds`` ran out: see
    ``result.processed``), deliver its outputs and mark them delivered; each of the
    ``chunks`` parts is sent while the next one is processed.

    ``carry``: the previous slice's last part, still in flight: it is settled (awaited,
    marked delivered) once this slice's first part is processed and before that part is
    sent, so outputs keep their order. ``hold``: this slice's last part is not awaited
    but returned in flight (None when nothing is left in flight); the caller settles it
    (:meth:`InFlight.settle`) or hands it to the next call.

    Raises:
        Exception: whatever a send raised; the partitions of ``records`` (and of
            ``carry``) have failed.
    """
    partitions = processor.partitions
    deadline = time.monotonic() + max_seconds
    if len(records) < min_split:  # a small slice: one send, one wait (latency)
        chunks = 1
    size = max(1, -(-len(records) // max(1, chunks)))
    total: BatchResult | None = None
    sending: asyncio.Future[None] | None = None
    sent: BatchResult | None = None
    if carry is not None:
        sending, sent = carry.sending, carry.result
    start = 0
    try:
        while start < len(records):
            part = records[start:start + size]
            result = processor.process_batch(part, deadline=deadline)
            start += result.processed
            if sending is not None and sent is not None:
                await sending
                _deliver(partitions, sent)
            sending, sent = asyncio.ensure_future(sender.send(result.outputs)), result
            total = result if total is None else merge(total, result)
            if result.processed < len(part):  # the deadline passed: the rest comes next
                break
        if sending is not None and sent is not None and not hold:
            await sending
            _deliver(partitions, sent)
            sending = sent = None
    except BaseException:
        if sending is not None and not sending.done():
            sending.cancel()
            with contextlib.suppress(BaseException):
                await sending
        failed = {record.partition for record in records}
        if sent is not None:
            failed |= _partitions(sent)
        if carry is not None:
            failed |= _partitions(carry.result)
        for partition in failed:
            partitions.fail(partition)
        raise
    if total is None:  # no records: an empty result
        total = processor.process_batch(records)
    return total, (None if sending is None or sent is None else InFlight(sending, sent))
