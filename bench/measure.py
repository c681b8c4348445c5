"""Measurements read from Kafka and /proc, the same way for every variant."""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.settings import Settings
from streams.kafka_clients import make_reader
from streams.topic_reader import count_records


@dataclass(frozen=True)
class Span:
    """How many records a topic holds and the broker times of its first and last."""

    count: int
    first_ms: int
    last_ms: int

    @property
    def rate(self) -> float:
        """Records per second between the first and the last acknowledgement."""
        return self.count / max(1e-3, (self.last_ms - self.first_ms) / 1000.0)


async def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    consumer = make_reader(Settings(kafka_bootstrap=bootstrap))
    await consumer.start()
    return consumer


async def wait_count(bootstrap: str, topic: str, expected: int, timeout: float,
                     alive: Callable[[], bool] = lambda: True) -> None:
    """Return once ``topic`` holds ``expected`` records; TimeoutError after ``timeout``,
    RuntimeError as soon as ``alive()`` says the producing process died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await count_records(bootstrap, topic) < expected:
        if not alive():
            raise RuntimeError(f"{topic}: the process producing it stopped")
        if loop.time() > deadline:
            raise TimeoutError(f"{topic}: fewer than {expected} records after {timeout}s")
        await asyncio.sleep(0.2)  # polling with a deadline


async def span(bootstrap: str, topic: str) -> Span:
    """First and last record timestamps (LogAppendTime topics: broker ack times)."""
    consumer = await _consumer(bootstrap)
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        firsts, lasts = [], []
        for tp in tps:
            if ends[tp] == 0:
                continue
            for offset, out in ((0, firsts), (ends[tp] - 1, lasts)):
                consumer.seek(tp, offset)
                record = await asyncio.wait_for(consumer.getone(tp), 30)
                out.append(record.timestamp)
        return Span(sum(ends.values()), min(firsts), max(lasts))
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def timestamp_at(bootstrap: str, topic: str, offset: int, partition: int = 0) -> float:
    """The timestamp of the record at ``offset`` of ``topic``'s ``partition``, in seconds
    since the epoch (on a LogAppendTime topic: when the broker acknowledged it)."""
    consumer = await _consumer(bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        return (await asyncio.wait_for(consumer.getone(tp), 30)).timestamp / 1000.0
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of a live process, MiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")
