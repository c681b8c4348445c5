"""The hot path: consume events, score and learn, publish, then commit.

One asyncio task reads batches with ``getmany``; each batch is processed in
offset order per partition, its outputs are sent with Faust's producer and
awaited, and only then do its offsets count as done. Commits never run ahead
of what was delivered (and, with checkpoints on, of what a checkpoint covers).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from schemas.settings import Settings
from streams.kafka_clients import ensure_topics, make_consumer, subscribe
from streams.processor import EventProcessor
from streams.records import Output, Record

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    """Hands aiokafka's rebalance callbacks (awaited before the group moves on) to the service."""

    def __init__(self, service: "ScoringService") -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.service.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.service.on_assigned(set(assigned))


class ScoringService(Service):
    """Driftline's consumer loop, started and stopped with the Faust app."""

    def __init__(self, app: faust.App, settings: Settings, processor: EventProcessor) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.processor = processor
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: set[TopicPartition] = set()
        self.done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._next_commit = 0.0

    async def on_start(self) -> None:
        """Create missing topics, join the consumer group and start the loop."""
        await ensure_topics(self.settings)
        self.consumer = make_consumer(self.settings)
        subscribe(self.consumer, self.settings, _Rebalance(self))
        await self.consumer.start()
        self._loop_task = asyncio.create_task(self._run(), name="driftline-scoring")

    async def on_stop(self) -> None:
        """Finish the batch in hand, commit what is done, leave the group."""
        self._stopping = True
        if self._loop_task is not None:
            with contextlib.suppress(Exception):
                await self._loop_task
        if self.consumer is not None:
            async with self._lock:
                await self._commit(self.assigned)
            await self.consumer.stop()

    async def _run(self) -> None:
        assert self.consumer is not None
        try:
            while not self._stopping:
                batch = await self.consumer.getmany(timeout_ms=100,
                                                    max_records=self.settings.batch_max)
                if batch:
                    await self.handle(batch)
                if time.monotonic() >= self._next_commit:
                    async with self._lock:
                        await self._commit(self.assigned)
        except Exception as exc:
            log.exception("scoring loop failed; stopping the worker")
            await self.crash(exc)
            raise

    async def handle(self, batch: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        """Process one ``getmany`` batch and wait until its outputs are delivered."""
        async with self._lock:
            records = [Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                       for tp, messages in batch.items() if tp in self.assigned
                       for m in messages]
            if not records:
                return
            await self._publish(self.processor.process(records))
            for tp, messages in batch.items():
                if tp in self.assigned and messages:
                    self.done[tp] = messages[-1].offset

    async def _publish(self, outputs: list[Output]) -> None:
        send = self.app.producer.send
        futures = [await send(o.topic, o.key, o.value, None, None, None) for o in outputs]
        if futures:
            await asyncio.gather(*futures)

    async def _commit(self, partitions: set[TopicPartition]) -> None:
        """Commit, for each partition, the offset after the last delivered event."""
        assert self.consumer is not None
        self._next_commit = time.monotonic() + self.settings.commit_interval
        offsets = {tp: OffsetAndMetadata(self.done[tp] + 1, "")
                   for tp in partitions
                   if tp in self.done and self._committed.get(tp) != self.done[tp]}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (will retry): %r", exc)
            return
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset - 1

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: commit what is done and forget their state."""
        async with self._lock:
            await self._commit(revoked & self.assigned)
            for tp in revoked:
                self.processor.partitions.pop(tp.partition, None)
                self.done.pop(tp, None)
                self._committed.pop(tp, None)
            self.assigned -= revoked
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """New partitions: start them from the committed offsets."""
        async with self._lock:
            self.assigned = set(assigned)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
