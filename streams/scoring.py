"""The hot path: consume events, score and learn, publish, checkpoint, commit.

One asyncio task reads batches with ``getmany``; each batch is processed in
offset order per partition, its outputs are sent in record batches and awaited.
Then, when due, the partition's learners are snapshotted and handed to the
background checkpoint writer. A partition's committed offset moves only to
what a written checkpoint covers (or, with checkpoints off, what was delivered).
On assignment each partition is restored from its newest valid checkpoint and
the consumer seeks just past it — in aiokafka's rebalance callback, which is
awaited before fetching starts, so the seek holds.
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

from schemas import constants
from schemas.settings import Settings
from streams import undecodable
from streams.checkpointer import Checkpointer
from streams.kafka_clients import ensure_topics, make_consumer, subscribe
from streams.metrics import Metrics
from streams.output import OutputSender, make_producer
from streams.processor import EventProcessor, utc_now
from streams.records import Output, Record
from streams.safe_json import metric_number

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

    def __init__(self, app: faust.App, settings: Settings, processor: EventProcessor,
                 metrics: Metrics, checkpointer: Checkpointer | None) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.processor = processor
        self.metrics = metrics
        self.checkpointer = checkpointer
        self.consumer: AIOKafkaConsumer | None = None
        self.sender: OutputSender | None = None
        self.assigned: set[TopicPartition] = set()
        self.restored: set[TopicPartition] = set()
        self.done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._stopping = False
        self._fatal: BaseException | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._next_commit = 0.0

    async def on_start(self) -> None:
        """Create missing topics, join the consumer group and start the loop."""
        await ensure_topics(self.settings)
        producer = make_producer(self.settings)
        await producer.start()
        self.sender = OutputSender(producer)
        if self.checkpointer is not None:
            self.checkpointer.start()
        self.consumer = make_consumer(self.settings)
        subscribe(self.consumer, self.settings, _Rebalance(self))
        await self.consumer.start()
        self._loop_task = asyncio.create_task(self._run(), name="driftline-scoring")

    async def on_stop(self) -> None:
        """Finish the batch in hand, checkpoint and commit, leave the group."""
        self._stopping = True
        if self._loop_task is not None:
            with contextlib.suppress(Exception):  # already reported by _run
                await self._loop_task
        try:
            if self.consumer is not None:
                async with self._lock:
                    await self._checkpoint_now(self.assigned)
                    await self._commit(self.assigned)
        except Exception:
            log.exception("final checkpoint or commit failed; the next owner replays from "
                          "the last written checkpoint")
        finally:
            if self.consumer is not None:
                await self.consumer.stop()
            if self.checkpointer is not None:
                await self.checkpointer.stop()
                await self.checkpointer.store.client.aclose()
            if self.sender is not None:
                await self.sender.producer.stop()

    @property
    def ready(self) -> bool:
        """True once every assigned partition has been restored."""
        return bool(self.assigned) and self.assigned <= self.restored

    async def _run(self) -> None:
        assert self.consumer is not None
        try:
            while not self._stopping:
                if self._fatal is not None:
                    raise self._fatal
                try:
                    batch = await self.consumer.getmany(timeout_ms=100,
                                                        max_records=self.settings.batch_max)
                except Exception as exc:
                    if (bad := undecodable.diagnose(exc)) is None:
                        raise
                    await self._skip_undecodable(bad)
                    continue
                if batch:
                    await self.handle(batch)
                if time.monotonic() >= self._next_commit:
                    async with self._lock:
                        self._checkpoint_due()
                        await self._commit(self.assigned)
        except Exception as exc:
            log.exception("scoring loop failed; stopping the worker")
            await self.crash(exc)
            raise

    async def handle(self, batch: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        """Process one ``getmany`` batch, wait until its outputs are delivered, checkpoint."""
        async with self._lock:
            if self._fatal is not None:
                return
            started = time.perf_counter()
            records = [Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                       for tp, messages in batch.items() if tp in self.restored
                       for m in messages]
            if not records:
                return
            assert self.sender is not None
            try:
                await self.sender.send(self.processor.process(records))
            except Exception as exc:
                # The learners have moved past events whose outputs may not be out: that
                # state must never be checkpointed. Drop it; the worker stops and the next
                # owner replays from the last checkpoint.
                self._fatal = exc
                for tp in batch:
                    self._discard(tp)
                raise
            for tp, messages in batch.items():
                if tp in self.restored and messages:
                    self.done[tp] = messages[-1].offset
            self._checkpoint_due()
            self._observe(records, time.perf_counter() - started)

    async def _skip_undecodable(self, bad: undecodable.Undecodable) -> None:
        """Handle what was unpacked before ``bad``, dead-letter ``bad``, seek past it."""
        log.error("%s; dead-lettered, skipping to offset %s", bad.message, bad.seek_to,
                  extra={"partition": bad.tp.partition, "offset": bad.first_offset})
        await self.handle(bad.salvaged)
        async with self._lock:
            if self._fatal is not None or bad.tp not in self.restored:
                return
            assert self.sender is not None and self.consumer is not None
            await self.sender.send([Output(self.settings.topic(constants.DEADLETTER), None,
                                           bad.dead_letter(self.settings.deadletter_max_bytes,
                                                           utc_now()))])
            self.metrics.deadletters.labels(reason=undecodable.REASON).inc()
            self.processor.partition(bad.tp.partition).advance(bad.last_offset)
            self.done[bad.tp] = bad.last_offset
            self.consumer.seek(bad.tp, bad.seek_to)

    def _discard(self, tp: TopicPartition) -> None:
        """Forget everything about ``tp``: learners, offsets, checkpoint bookkeeping."""
        self.processor.partitions.pop(tp.partition, None)
        self.done.pop(tp, None)
        self._committed.pop(tp, None)
        self.restored.discard(tp)
        if self.checkpointer is not None:
            self.checkpointer.forget(tp.partition)

    def _in_step(self, tp: TopicPartition) -> bool:
        """True when ``tp``'s learners reflect exactly the delivered events."""
        part = self.processor.partitions.get(tp.partition)
        return part is not None and tp in self.restored and part.offset == self.done.get(
            tp, part.offset)

    def _observe(self, records: list[Record], elapsed: float) -> None:
        m = self.metrics
        m.consumed.inc(len(records))
        m.batch.observe(elapsed)
        m.processing.observe(elapsed / len(records))
        now_ms = time.time() * 1000.0
        for origin in self.processor.origins_ms:
            m.latency.observe(max(0.0, now_ms - origin) / 1000.0)
        self.processor.origins_ms.clear()
        counts = self.processor.counts
        for key, n in counts.items():
            kind = key[0]
            if kind == "scored":
                m.scored.labels(model=key[1]).inc(n)
                m.predictions.labels(model=key[1]).inc(n)
            elif kind == "learned":
                m.learned.labels(model=key[1]).inc(n)
            elif kind == "dead":
                m.deadletters.labels(reason=key[1]).inc(n)
            elif kind == "skipped":
                m.skipped.inc(n)
            elif kind == "watched":  # label-free alerts: signal "feature" or "prediction"
                m.alerts.labels(model=key[1], signal=key[2]).inc(n)
            elif kind == "promoted":
                m.promotions.labels(model=key[1]).inc(n)
            elif kind == "challenger_failed":
                m.challenger_failures.labels(model=key[1]).inc(n)
            elif key[2] == "worse":
                task = self.processor.registry.config.models[key[1]].task
                m.alerts.labels(model=key[1],
                                signal="score" if task == "anomaly" else "error").inc(n)
            elif key[2] == "better":
                m.drift_improvements.labels(model=key[1]).inc(n)
            else:
                m.drift_muted.labels(model=key[1]).inc(n)
        counts.clear()

    def refresh_gauges(self) -> None:
        """Set the gauges read at scrape time: lag, model metrics, ADWIN, checkpoint age."""
        m = self.metrics
        now = time.time()
        for tp in self.assigned:
            if self.consumer is not None:
                high = self.consumer.highwater(tp)
                if high is not None:
                    m.lag.labels(partition=str(tp.partition)).set(
                        max(0, high - self.done.get(tp, -1) - 1))
            if self.checkpointer is not None and tp.partition in self.checkpointer.durable_at:
                m.checkpoint_age.labels(partition=str(tp.partition)).set(
                    now - self.checkpointer.durable_at[tp.partition])
        for partition, part in self.processor.partitions.items():
            for name, learner in part.learners.items():
                labels = {"model": name, "partition": str(partition)}
                m.model_metric.labels(metric=learner.spec.metric, **labels).set(
                    metric_number(learner.metric))
                m.adwin_width.labels(**labels).set(learner.watcher.width)
                m.adwin_mean.labels(**labels).set(learner.watcher.mean)
                if learner.challenger is not None:
                    m.compare(name, partition, learner.challenger.metric,
                              *learner.challenger.values())

    # -- checkpoints and commits ----------------------------------------------------------
    def _checkpoint_due(self) -> None:
        cp = self.checkpointer
        if cp is None:
            return
        for tp in self.restored:
            part = self.processor.partitions.get(tp.partition)
            if part is not None and self._in_step(tp) and cp.due(tp.partition, part):
                cp.submit(cp.snapshot(tp.partition, part))

    async def _checkpoint_now(self, partitions: set[TopicPartition]) -> None:
        if self.checkpointer is None:
            return
        deadline = time.monotonic() + 10.0  # one budget for all: rebalances must not stall
        for tp in partitions & self.restored:
            part = self.processor.partitions.get(tp.partition)
            if part is not None and self._in_step(tp):
                await self.checkpointer.flush(tp.partition, part,
                                              timeout=max(0.1, deadline - time.monotonic()))

    def _committable(self, tp: TopicPartition) -> int | None:
        done = self.done.get(tp)
        if self.checkpointer is None or done is None:
            return done
        durable = self.checkpointer.durable.get(tp.partition)
        return None if durable is None else min(done, durable)

    async def _commit(self, partitions: set[TopicPartition]) -> None:
        """Commit, per partition, the offset after the last event delivered and checkpointed."""
        assert self.consumer is not None
        self._next_commit = time.monotonic() + self.settings.commit_interval
        offsets = {}
        for tp in partitions:
            upto = self._committable(tp)
            if upto is not None and self._committed.get(tp, -1) < upto:
                offsets[tp] = OffsetAndMetadata(upto + 1, "")
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (will retry): %r", exc)
            return
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset - 1

    # -- rebalances -----------------------------------------------------------------------
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: checkpoint them, commit, forget their state."""
        async with self._lock:
            try:
                await self._checkpoint_now(revoked)
                await self._commit(revoked & self.assigned)
            except Exception:
                log.exception("checkpoint or commit at revocation failed; the next owner "
                              "replays from the last written checkpoint")
            finally:
                for tp in revoked:
                    self._discard(tp)
                self.assigned -= revoked
                self.metrics.assigned.set(len(self.assigned))
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """New partitions: restore each from its checkpoint and seek just past it."""
        async with self._lock:
            self.assigned = set(assigned)
            self.metrics.assigned.set(len(assigned))
            try:
                for tp in sorted(assigned):  # always from Redis: memory may be stale
                    self._discard(tp)
                    await self._restore(tp)
            except Exception as exc:
                log.error("restore failed, stopping: %s", exc)
                self._fatal = exc
                return
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))

    async def _restore(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        part = self.processor.partition(tp.partition)
        cp = self.checkpointer
        if cp is not None:
            registry = self.processor.registry
            found = await cp.restore(tp.partition, registry.names)
            for name, (_, learner) in list(found.learners.items()):
                if not learner.adopt(registry.config.models[name], registry.cooldown):
                    log.warning("model %s changed its pipeline or task since its checkpoint: "
                                "starting it afresh", name,
                                extra={"model": name, "partition": tp.partition})
                    del found.learners[name]
            if found.learners:
                part.restore(found.learners)
                self.consumer.seek(tp, part.offset + 1)
                self.done[tp] = part.offset
                self._committed[tp] = -1
                log.info("partition %s restored at offset %s (%s)", tp.partition, part.offset,
                         ", ".join(f"{m}: {o}" for m, (o, _) in found.learners.items()),
                         extra={"partition": tp.partition, "offset": part.offset})
            cp.track(tp.partition, part)
        self.restored.add(tp)
