"""Publish a batch's outputs with one record batch per (topic, partition).

aiokafka's per-message ``send`` costs about as much as scoring the event; building
record batches with its public ``create_batch``/``send_batch`` API does not. Keys are
partitioned like every Kafka client's default partitioner (murmur2), so outputs land
where a plain keyed ``send`` would put them (a topic of one partition takes every key
without hashing); keyless outputs go round-robin.

>>> partition_for(b"event-1", [0, 1, 2, 3]) == partition_for(b"event-1", [0, 1, 2, 3])
True
>>> partition_for(None, [0, 1, 2], counter=7)
1
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from streams.records import Output

_METADATA_TTL = 30.0


def partition_for(key: bytes | None, partitions: Sequence[int], counter: int = 0) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (round-robin for None)."""
    if key is None:
        return partitions[counter % len(partitions)]
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


class OutputSender:
    """Sends outputs in record batches and waits until the broker has them all.

    Uses ``producer`` (started and closed by whoever created it).
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, tuple[float, list[int]]] = {}
        self._round_robin = 0

    async def _partitions_of(self, topic: str) -> list[int]:
        cached = self._partitions.get(topic)
        if cached is None or cached[0] < time.monotonic():
            partitions = sorted(await self.producer.partitions_for(topic))
            cached = self._partitions[topic] = (time.monotonic() + _METADATA_TTL, partitions)
        return cached[1]

    async def send(self, outputs: list[Output]) -> None:
        """Publish ``outputs`` (order kept within each topic-partition); wait for acks."""
        groups: dict[tuple[str, int], list[Output]] = defaultdict(list)
        topics: dict[str, list[int]] = {}  # one metadata look-up per topic and call
        for output in outputs:
            topic = output.topic
            partitions = topics.get(topic)
            if partitions is None:
                partitions = topics[topic] = await self._partitions_of(topic)
            if len(partitions) == 1:  # any key lands there: no hash
                groups[topic, partitions[0]].append(output)
                continue
            self._round_robin += output.key is None
            groups[topic, partition_for(output.key, partitions, self._round_robin)].append(
                output)
        futures = []
        producer = self.producer
        for (topic, partition), items in groups.items():
            batch = producer.create_batch()
            for item in items:
                if batch.append(key=item.key, value=item.value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=item.key, value=item.value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
