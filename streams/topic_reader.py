"""Read topics from the beginning: for the demo, the CLI and the tests."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

Records = list[ConsumerRecord]  # type: ignore[type-arg]


async def follow(bootstrap: str, topics: list[str], timeout: float,
                 poll: float = 0.2, **security: Any) -> AsyncIterator[Records]:
    """Batches of ``topics``' records from their start, as they arrive, for as long as the
    caller iterates (an empty batch every ``poll`` seconds when nothing came); raises
    TimeoutError if a topic does not appear within ``timeout``.
    ``security``: :func:`streams.kafka_security.kafka_security_kwargs` of a secured broker.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024, **security)
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        tps = []
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            while not partitions:
                if loop.time() > deadline:
                    raise TimeoutError(f"topic {topic} did not appear within {timeout}s")
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
            tps += [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=int(poll * 1000))
            yield [record for records in batch.values() for record in records]
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def read_until(bootstrap: str, topic: str, done: Callable[[Records], bool],
                     timeout: float, settle: float = 0.0, **security: Any) -> Records:
    """Records of ``topic`` from its start, once ``done(records)`` holds and ``settle``
    more seconds passed; raises TimeoutError if it does not hold within ``timeout``.
    """
    got: Records = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    settled_at = None
    batches = follow(bootstrap, [topic], timeout, **security)
    try:
        async for batch in batches:
            got.extend(batch)
            now = loop.time()
            if settled_at is not None or done(got):
                settled_at = settled_at or now + settle
                if now >= settled_at:
                    return got
            elif now > deadline:
                raise TimeoutError(f"{topic}: condition not met after {timeout}s "
                                   f"({len(got)} records)")
    finally:
        await batches.aclose()
    raise AssertionError("unreachable: follow() never ends by itself")


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float,
                     settle: float = 1.0, **security: Any) -> Records:
    """Records of ``topic`` from its start once ``expected`` arrived (plus ``settle``
    seconds to catch extras)."""
    return await read_until(bootstrap, topic, lambda got: len(got) >= expected, timeout,
                            settle, **security)


async def count_records(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds (sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    finally:
        # aiokafka can report its idle coordinator task's cancellation from stop().
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
