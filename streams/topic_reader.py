"""Read a whole topic from the beginning: for the demo, the CLI and the tests."""

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float,
                     settle: float = 1.0) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    """Records of ``topic`` from its start, once ``expected`` arrived and ``settle``
    seconds passed without reaching more; raises TimeoutError if fewer arrive in time.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    got: list[ConsumerRecord] = []  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if loop.time() > deadline:
                raise TimeoutError(f"topic {topic} did not appear within {timeout}s")
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_until = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                got.extend(records)
            now = loop.time()
            if len(got) >= expected:
                quiet_until = quiet_until or now + settle
                if now >= quiet_until:
                    return got
            elif now > deadline:
                raise TimeoutError(f"{topic}: {len(got)} records after {timeout}s, "
                                   f"expected {expected}")
    finally:
        await consumer.stop()
