"""Consume -> process -> publish for one slice of records, bounded in time.

Processes records (each of an active partition) until ``batch_max_seconds`` of
model work is spent, sends the outputs and waits until the broker has them all,
then marks the handled events delivered. If the send fails, the partitions
involved fail: their learners reflect events whose outputs may be lost, so they
are dropped and never checkpointed.
"""

import time
from collections.abc import Sequence
from typing import Protocol

from streams.processor import BatchResult, EventProcessor
from streams.records import Output, Record


class Sender(Protocol):
    """Publishes outputs and returns once the broker acknowledged all of them."""

    async def send(self, outputs: list[Output]) -> None:
        """Publish ``outputs`` in order; raise if any is not acknowledged."""


async def process_and_publish(records: Sequence[Record], processor: EventProcessor,
                              sender: Sender, max_seconds: float) -> BatchResult:
    """Process a prefix of ``records`` (all, unless ``max_seconds`` ran out: see
    ``result.processed``), deliver its outputs and mark them delivered.

    Raises:
        Exception: whatever the send raised; the partitions of ``records`` have failed.
    """
    partitions = processor.partitions
    result = processor.process_batch(records, deadline=time.monotonic() + max_seconds)
    try:
        await sender.send(result.outputs)
    except BaseException:
        for partition in {record.partition for record in records}:
            partitions.fail(partition)
        raise
    for partition, offset in result.last_offsets.items():
        state = partitions.active(partition)
        if state is not None:
            state.deliver(offset)
    for partition, offset in result.last_feedback_offsets.items():
        state = partitions.active(partition)
        if state is not None:
            state.deliver_feedback(offset)
    return result
