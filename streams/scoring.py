"""The hot path: consume events, score and learn, publish, checkpoint, commit.

:class:`ScoringLoop` wires the pieces, each of which takes what it talks to:
:func:`streams.publish.process_and_publish` (process a slice of records within
``batch_max_seconds`` and deliver its outputs), :class:`streams.commits.Committer`
(when to checkpoint, what to commit), :class:`streams.rebalance.Rebalancer`
(assignment, restore, revocation) and :meth:`streams.metrics.Metrics.observe_batch`.
Every offset and the learners of each partition live in
:class:`learners.partition_state.PartitionState`. The loop reads batches with
``getmany``; records a slice left unprocessed (time ran out) are handled next, in
order, after yielding to the event loop (web server, heartbeats). A slice's last
outputs are left in flight while the next slice is processed (:attr:`ScoringLoop.inflight`);
they are settled before anything that needs them delivered: the next send, an idle
wait, a revocation, an undecodable batch's dead letter, shutdown.

:class:`ScoringService` is the mode ``Service`` the Faust app starts: it creates the
Kafka clients and the Redis client, and closes exactly those.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import faust
from aiokafka import TopicPartition
from mode import Service

from learners import checkpoint
from learners.partition_state import Partitions
from schemas import constants
from schemas.exceptions import DriftlineError
from schemas.settings import Settings
from streams import undecodable
from streams.checkpoint_store import CheckpointStore
from streams.checkpointer import Checkpointer
from streams.commits import Committer, OffsetCommitter
from streams.kafka_clients import make_consumer, make_producer, subscribe
from streams.merge import Merger
from streams.metrics import Metrics
from streams.output import OutputSender
from streams.processor import EventProcessor, utc_now
from streams.publish import InFlight, Sender, process_and_publish
from streams.rebalance import Positions, Rebalancer
from streams.records import Output, Record
from streams.redis_client import make_redis
from streams.safe_json import metric_number

log = logging.getLogger(__name__)


class Consumer(OffsetCommitter, Positions, Protocol):
    """What the loop needs of aiokafka's ``AIOKafkaConsumer``."""

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        """Fetched records by partition."""

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's last known high watermark."""

    async def position(self, partition: TopicPartition) -> int:
        """The next offset to fetch of ``partition``."""


class ScoringLoop:
    """Driftline's consumer loop over given clients (started and closed by the caller)."""

    def __init__(self, settings: Settings, processor: EventProcessor, metrics: Metrics,
                 consumer: Consumer, sender: Sender, checkpointer: Checkpointer | None) -> None:
        self.settings = settings
        self.processor = processor
        self.metrics = metrics
        self.consumer = consumer
        self.sender = sender
        self.checkpointer = checkpointer
        self.partitions = processor.partitions
        self.topic = settings.topic(constants.EVENTS)
        self.feedback_topic = settings.topic(constants.FEEDBACK)
        self.lock = asyncio.Lock()
        if checkpointer is not None:
            checkpointer.bind(self.partitions)
        self.committer = Committer(consumer, self.partitions, checkpointer, settings, self.topic,
                                   feedback_topic=self.feedback_topic)
        #: A partition's events and feedback, merged in one deterministic order.
        self.merger = Merger(self.topic, self.feedback_topic)
        self.rebalancer = Rebalancer(consumer, self.partitions, processor.registry,
                                     self.committer, checkpointer, metrics, self.lock,
                                     self.fail, self.feedback_topic, self.merger.reset,
                                     self.settle)
        self.backlog: list[Record] = []
        #: The last slice's last part, sent, its acknowledgement not awaited yet: the next
        #: slice is processed meanwhile (see :meth:`settle`).
        self.inflight: InFlight | None = None
        self.stopping = False
        self.fatal: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        """Stop the loop with ``exc`` at its next step."""
        if self.fatal is None:
            self.fatal = exc

    @property
    def ready(self) -> bool:
        """True once every assigned partition is restored."""
        states = [state for _, state in self.partitions.items()]
        return bool(states) and all(state.active for state in states)

    async def run(self) -> None:
        """Consume, process, publish, checkpoint and commit until :attr:`stopping`.

        Raises:
            Exception: a delivery failure or a failed restore (the worker must stop).
        """
        while not self.stopping:
            if self.fatal is not None:
                raise self.fatal
            if self.backlog:
                records, self.backlog = self.backlog, []
                await asyncio.sleep(0)  # let the web server and the heartbeat run
            else:
                try:  # with a part in flight, only what is fetched already
                    batch = await self.consumer.getmany(
                        timeout_ms=0 if self.inflight is not None else 100,
                        max_records=self.settings.batch_max)
                except Exception as exc:  # a record batch that cannot be decoded
                    if (bad := undecodable.diagnose(exc)) is None:
                        raise
                    await self._skip_undecodable(bad)
                    continue
                records = await self._merged(batch)
            if records:
                await self.handle(records, hold=True)
            elif self.inflight is not None:  # nothing new: wait for the broker's ack
                async with self.lock:
                    await self.settle()
            if self.committer.commit_due():
                async with self.lock:
                    self.committer.checkpoint_due()
                    self.committer.commit_in_background()  # the loop does not wait

    async def _merged(self, fetched: dict[TopicPartition, list[Any]]) -> list[Record]:
        """The fetched records (by topic-partition) merged with those held back, in merge
        order (see :mod:`streams.merge`); what cannot be ordered yet stays held."""
        merger = self.merger
        for tp, messages in fetched.items():
            merger.extend(tp.topic, tp.partition, [
                Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                for m in messages])
        for topic, partition in merger.unknown():
            if self.partitions.active(partition) is None:
                continue
            try:  # bounded: a partition whose position is not known yet is asked again
                offset = await asyncio.wait_for(
                    self.consumer.position(TopicPartition(topic, partition)), 0.5)
            except Exception as exc:
                log.debug("position of %s-%s not known yet: %r", topic, partition, exc)
                continue
            merger.position(topic, partition, offset)
        return merger.ready(lambda topic, p: self.consumer.highwater(TopicPartition(topic, p)))

    async def handle(self, records: list[Record], hold: bool = False) -> None:
        """Process and deliver a prefix of ``records`` (of partitions still active here);
        keep the rest for the next step. With ``hold``, the last part's outputs are left
        in flight (:attr:`inflight`): the next call, or :meth:`settle`, marks them
        delivered."""
        async with self.lock:
            if self.fatal is not None:
                return
            gone = {p for p in {r.partition for r in records}
                    if self.partitions.active(p) is None}
            if gone:  # revoked or failed meanwhile
                records = [r for r in records if r.partition not in gone]
            if not records:
                return
            started = time.perf_counter()
            carry, self.inflight = self.inflight, None
            try:
                result, self.inflight = await process_and_publish(
                    records, self.processor, self.sender, self.settings.batch_max_seconds,
                    carry=carry, hold=hold)
            except Exception as exc:
                # The failed partitions' learners are gone; the worker stops and the next
                # owner replays from the last checkpoint.
                self.backlog = []
                self.fail(exc)
                raise
            self.backlog = records[result.processed:]
            self.committer.checkpoint_due()
            self.metrics.observe_batch(result, time.perf_counter() - started,
                                       time.time() * 1000.0)

    async def settle(self) -> None:
        """Wait for the outputs still in flight and mark them delivered; queue the
        snapshots that were waiting for them. Called with :attr:`lock` held.

        Raises:
            Exception: what the send raised; its partitions have failed and the loop stops.
        """
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return
        try:
            await inflight.settle(self.partitions)
        except Exception as exc:
            self.backlog = []
            self.fail(exc)
            raise
        self.committer.release()

    async def finish(self) -> None:
        """Checkpoint and commit what is delivered (shutdown); records not yet processed
        are left to the next owner."""
        await self.rebalancer.stop()
        self.backlog = []
        async with self.lock:
            try:
                await self.settle()
            except Exception:
                log.exception("outputs in flight at shutdown were not delivered; their "
                              "partitions are left to the next owner")
            numbers = [p for p, _ in self.partitions.items()]
            await self.committer.flush(numbers)
            await self.committer.commit(numbers)

    async def _skip_undecodable(self, bad: undecodable.Undecodable) -> None:
        """Handle what was unpacked before ``bad``, dead-letter ``bad``, seek past it."""
        log.error("%s; dead-lettered, skipping to offset %s", bad.message, bad.seek_to,
                  extra={"topic": bad.tp.topic, "partition": bad.tp.partition,
                         "offset": bad.first_offset})
        salvaged = [Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                    for messages in bad.salvaged.values() for m in messages]
        while salvaged:  # all of it, in order, before the partition moves past the batch
            await self.handle(salvaged)
            salvaged, self.backlog = self.backlog, []
        async with self.lock:
            await self.settle()  # the dead letter goes after the outputs in flight
            state = self.partitions.active(bad.tp.partition)
            if self.fatal is not None or state is None:
                return
            if bad.last_offset > state.processed:  # not already dead-lettered before a restart
                await self.sender.send([Output(
                    self.settings.topic(constants.DEADLETTER), None,
                    bad.dead_letter(self.settings.deadletter_max_bytes, utc_now()))])
                self.metrics.deadletters.labels(reason=undecodable.REASON).inc()
                state.advance(bad.last_offset)
                state.deliver(bad.last_offset)
            self.consumer.seek(bad.tp, bad.seek_to)

    def refresh_gauges(self) -> None:
        """Set the gauges read at scrape time: lag, model metrics, ADWIN, checkpoint age."""
        m = self.metrics
        now = time.time()
        for partition, state in self.partitions.items():
            high = self.consumer.highwater(TopicPartition(self.topic, partition))
            if high is not None:
                m.lag.labels(partition=str(partition)).set(max(0, high - state.delivered - 1))
            if state.durable_at is not None:  # an idle, checkpointed partition is not stale
                pending = (state.processed > state.durable
                           or state.fb.processed > state.fb.durable)
                m.checkpoint_age.labels(partition=str(partition)).set(
                    now - state.durable_at if pending else 0.0)
        model_gauges(m, self.partitions)


def model_gauges(metrics: Metrics, partitions: Partitions) -> None:
    """Set each learner's metric and ADWIN gauges (read at scrape time)."""
    for partition, state in partitions.items():
        for name, learner in state.learners.items():
            labels = {"model": name, "partition": str(partition)}
            metrics.model_metric.labels(metric=learner.spec.metric, **labels).set(
                metric_number(learner.metric))
            metrics.adwin_width.labels(**labels).set(learner.watcher.width)
            metrics.adwin_mean.labels(**labels).set(learner.watcher.mean)
            if learner.challenger is not None:
                metrics.compare(name, partition, learner.challenger.metric,
                                *learner.challenger.values())


class ScoringService(Service):
    """Driftline's consumer loop, started and stopped with the Faust app.

    Creates (and alone closes) the consumer, the producer and the Redis client.
    """

    def __init__(self, app: faust.App, settings: Settings, processor: EventProcessor,
                 metrics: Metrics) -> None:
        super().__init__()
        self.app = app
        self.settings = settings
        self.processor = processor
        self.metrics = metrics
        self.scoring: ScoringLoop | None = None
        self._closers: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        #: Set once a failure may crash the app (see :meth:`hold_failures`).
        self._failures_released = asyncio.Event()

    def release_failures(self) -> None:
        """Let a failure of the loop crash the app from now on (see :meth:`hold_failures`)."""
        self._failures_released.set()

    async def hold_failures(self) -> None:
        """Wait until the app has started its own services, or this service stops.

        The app starts this service before Faust's services
        (:meth:`streams.app.DriftlineApp.on_start`); a failure of the loop meanwhile (a
        refused restore) has already stopped scoring, but crashing the app while it is
        still starting Faust's services leaves Faust's consumer thread to fail its stop
        with a traceback. The app calls :meth:`release_failures` once they run.
        """
        await self._failures_released.wait()

    @property
    def ready(self) -> bool:
        """True once every assigned partition has been restored."""
        return self.scoring is not None and self.scoring.ready

    def partitions(self, restored: bool = False) -> list[int]:
        """The partitions assigned to this worker (only the restored ones if ``restored``)."""
        return [p for p, state in self.processor.partitions.items()
                if state.active or not restored]

    def refresh_gauges(self) -> None:
        """See :meth:`ScoringLoop.refresh_gauges` (only the models' gauges before it runs)."""
        if self.scoring is not None:
            self.scoring.refresh_gauges()
        else:
            model_gauges(self.metrics, self.processor.partitions)

    async def on_start(self) -> None:
        """Create the clients, join the consumer group, start the loop (the topics exist:
        the app created the missing ones just before:
        :meth:`streams.app.DriftlineApp.on_start`)."""
        settings = self.settings
        producer = make_producer(settings)
        await producer.start()
        self._closers.append(producer.stop)
        checkpointer = None
        if settings.checkpoints:
            key = checkpoint.signing_key(
                settings.checkpoint_key.get_secret_value() if settings.checkpoint_key else None)
            client = make_redis(settings, socket_timeout=2.0, socket_connect_timeout=2.0)
            self._closers.append(client.aclose)
            store = CheckpointStore(client, key, settings.checkpoint_keep, settings.app_id,
                                    settings.topic(constants.EVENTS), settings.redis_prefix)
            checkpointer = Checkpointer(store, settings, self.metrics)
            checkpointer.start()
            self._closers.append(checkpointer.stop)
        consumer = make_consumer(settings)
        self.scoring = loop = ScoringLoop(settings, self.processor, self.metrics, consumer,
                                       OutputSender(producer), checkpointer)
        subscribe(consumer, settings, loop.rebalancer)
        await consumer.start()
        self._closers.append(consumer.stop)
        self._task = asyncio.create_task(self._run(loop), name="driftline-scoring")

    async def _run(self, loop: ScoringLoop) -> None:
        try:
            await loop.run()
        except DriftlineError as exc:  # said in one line where it happened: no traceback
            log.error("stopping the worker: %s", exc)
            await self.hold_failures()
            await self.crash(exc)
            raise
        except Exception as exc:
            log.exception("scoring loop failed; stopping the worker")
            await self.hold_failures()
            await self.crash(exc)
            raise

    async def on_stop(self) -> None:
        """Finish the slice in hand, checkpoint and commit, leave the group, close clients."""
        self.release_failures()  # a failure held at start-up is reported, not waited on
        try:
            if self.scoring is not None:
                self.scoring.stopping = True
                if self._task is not None:
                    with contextlib.suppress(Exception):  # already reported by _run
                        await self._task
                await self.scoring.finish()
        except Exception:
            log.exception("final checkpoint or commit failed; the next owner replays from "
                          "the last written checkpoint")
        finally:
            for close in reversed(self._closers):  # consumer first: leave the group
                try:
                    await close()
                except Exception:
                    log.exception("closing a client failed")
            self._closers.clear()
