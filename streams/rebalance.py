"""Rebalances: what happens when partitions are assigned to or revoked from this worker.

aiokafka awaits these callbacks before the group moves on, so they must return
quickly. Assignment only creates each partition's state and pauses it;
restoring from Redis (which can take long for big models) runs in a task per
partition, which seeks just past the restored offset and resumes the partition
when done. Until then the partition is not ready and nothing of it is fetched.
Revocation cancels restores in flight, checkpoints and commits what it can
(bounded), and forgets the partitions.

A restore is bound to Kafka: it reads the committed offset and the checkpoints its
metadata names (:mod:`streams.commit_metadata`) and the log's bounds. A resume offset
below the log start is a gap (retention dropped records): logged and counted. One
past the log end (topic deleted, re-created or truncated) stops the worker with one
line, unless ``DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh`` (then every model starts
afresh at the log start).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from learners.learner import Learner
from learners.partition_state import Partitions, PartitionState, Phase
from learners.registry import ModelRegistry
from schemas.exceptions import DriftlineError
from streams.checkpoint_store import Restored
from streams.checkpointer import Checkpointer
from streams.commit_metadata import Identity, LogPosition, read_position
from streams.commits import Committer
from streams.exceptions import ServiceError
from streams.metrics import Metrics

log = logging.getLogger(__name__)


class Positions(Protocol):
    """What rebalancing needs of the consumer (aiokafka's ``AIOKafkaConsumer``)."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching ``partitions``."""

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch ``partitions`` again."""


class Rebalancer(ConsumerRebalanceListener):
    """Keeps the partition states in step with the group's assignment.

    ``lock`` is held while a batch is processed, so partitions never change under it;
    ``on_fatal`` is called with an error that must stop the worker (restore failed).
    """

    def __init__(self, consumer: Positions, partitions: Partitions, registry: ModelRegistry,
                 committer: Committer, checkpointer: Checkpointer | None, metrics: Metrics,
                 lock: asyncio.Lock, on_fatal: Callable[[BaseException], None],
                 feedback_topic: str | None = None,
                 on_moved: Callable[[int, dict[str, int | None] | None], None] | None = None,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.consumer = consumer
        self.partitions = partitions
        self.registry = registry
        self.committer = committer
        self.checkpointer = checkpointer
        self.metrics = metrics
        self.lock = lock
        self.on_fatal = on_fatal
        self.restoring: dict[int, asyncio.Task[None]] = {}
        #: Late labels: the feedback topic (co-partitioned with the events topic), and
        #: what to tell when a partition's position changes (the merge buffers).
        self.feedback_topic = feedback_topic
        self.on_moved = on_moved
        #: Waits for outputs still in flight (the loop's, called with ``lock`` held), so a
        #: revocation checkpoints and commits what is delivered.
        self.settle = settle

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Before partitions move: stop their restores, checkpoint, commit, forget them."""
        numbers = {tp.partition for tp in revoked}
        await self._cancel(numbers)
        async with self.lock:
            try:
                if self.settle is not None:
                    await self.settle()
                await self.committer.flush(numbers)
                await self.committer.commit(numbers)
            except Exception:
                log.exception("checkpoint or commit at revocation failed; the next owner "
                              "replays from the last written checkpoint")
            finally:
                for partition in numbers:
                    self.partitions.revoke(partition)
                    if self.on_moved is not None:
                        self.on_moved(partition, None)
                self.metrics.assigned.set(len(self.partitions))
        log.info("partitions revoked: %s", sorted(numbers))

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """New partitions: a fresh state each, paused and restored in the background."""
        async with self.lock:
            for partition in sorted({tp.partition for tp in assigned}):
                tps = sorted(tp for tp in assigned if tp.partition == partition)
                self.metrics.declare_partition(partition)
                state = self.partitions.assign(partition)  # always from Redis
                if self.on_moved is not None:
                    self.on_moved(partition, dict.fromkeys(tp.topic for tp in tps))
                if self.checkpointer is None:
                    state.restore({}, time.monotonic(), time.time())
                    continue
                self.consumer.pause(*tps)
                self.restoring[partition] = asyncio.create_task(
                    self._restore(tps, state), name=f"driftline-restore-{partition}")
            self.metrics.assigned.set(len(self.partitions))
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        log.info("partitions assigned: %s", ", ".join(
            f"{topic} {sorted(numbers)}" for topic, numbers in sorted(by_topic.items())))

    async def stop(self) -> None:
        """Cancel every restore in flight."""
        await self._cancel(set(self.restoring))

    async def _cancel(self, numbers: set[int]) -> None:
        tasks = [self.restoring.pop(p) for p in numbers if p in self.restoring]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _restore(self, tps: list[TopicPartition], state: PartitionState) -> None:
        assert self.checkpointer is not None
        tp = next((t for t in tps if t.topic != self.feedback_topic), tps[0])
        try:
            position = await read_position(self.consumer, tp)
            fb_tp = next((t for t in tps if t.topic == self.feedback_topic), None)
            fb_position = (None if fb_tp is None
                           else await read_position(self.consumer, fb_tp))
            found = await self.checkpointer.restore(
                tp.partition, self.registry.names, None if position is None else position.named,
                None if fb_position is None else fb_position.named)
            fb_offsets = await self.checkpointer.restore_pending(tp.partition, found,
                                                                 state.feedback)
            if fb_position is not None:
                self._check_feedback_commit(tp.partition, found, fb_offsets, fb_position)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one line, no traceback: the worker stops on it
            if not isinstance(exc, DriftlineError):
                exc = ServiceError(f"partition {tp.partition}: restore failed: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            log.error("restore failed, stopping: %s", exc)
            self.on_fatal(exc)
            return
        finally:
            if self.restoring.get(tp.partition) is asyncio.current_task():
                del self.restoring[tp.partition]
        if self.partitions.get(tp.partition) is not state or state.phase is not Phase.RESTORING:
            return  # revoked or re-assigned meanwhile
        for name, (_, learner) in list(found.learners.items()):
            if not learner.adopt(self.registry.config.models[name], self.registry.cooldown):
                log.warning("model %s changed its pipeline or task since its checkpoint: "
                            "starting it afresh", name,
                            extra={"model": name, "partition": tp.partition})
                del found.learners[name]
        learners = found.learners
        seek_to = None
        try:
            if position is not None:
                learners, seek_to = self._fit_log(tp.partition, learners, position)
            starts = ({} if learners or len(tps) < 2 else await self._starts(tps))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, DriftlineError):
                exc = ServiceError(f"partition {tp.partition}: restore failed: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            log.error("%s", exc, extra={"partition": tp.partition})
            self.on_fatal(exc)
            return
        if self.partitions.get(tp.partition) is not state or state.phase is not Phase.RESTORING:
            return  # revoked or re-assigned meanwhile
        for name in self.registry.names:
            if name not in learners:  # started afresh: so are its pending predictions
                state.feedback.stores.pop(name, None)
                self.checkpointer.hashes.forget(tp.partition, name)
        # The checkpoint age goes on from when the oldest restored checkpoint was written.
        written = min((found.created_at.get(m, time.time()) for m in learners),
                      default=time.time())
        state.restore(learners, time.monotonic(), written, fb_offsets)
        if learners:
            self.checkpointer.remember(tp.partition, state.generation, state.offset, {
                m: Identity(o, found.digests[m]) for m, (o, _) in learners.items()
                if m in found.digests}, state.fb.processed)
            positions: dict[str, int | None] = {
                t.topic: (state.fb.processed if t.topic == self.feedback_topic
                          else state.offset) + 1 for t in tps}
            if seek_to is not None:
                positions[tp.topic] = seek_to
            for t in tps:
                self.consumer.seek(t, positions[t.topic])
            if self.on_moved is not None:
                self.on_moved(tp.partition, positions)
            log.info("partition %s restored at offset %s (%s)", tp.partition, state.offset,
                     ", ".join(f"{m}: {o}" for m, (o, _) in learners.items()),
                     extra={"partition": tp.partition, "offset": state.offset})
        elif starts:  # nothing checkpointed: from the group's offsets, positions known
            if seek_to is not None:
                starts = {t: (seek_to if t == tp else o) for t, o in starts.items()}
            for t, offset in starts.items():
                self.consumer.seek(t, offset)
            if self.on_moved is not None:
                self.on_moved(tp.partition, {t.topic: o for t, o in starts.items()})
        elif seek_to is not None:
            self.consumer.seek(tp, seek_to)
        self.consumer.resume(*tps)

    def _check_feedback_commit(self, partition: int, found: Restored,
                               fb_offsets: dict[str, int], fb_position: LogPosition) -> None:
        """The feedback topic's committed offset must be covered by each restored model's
        checkpoint (a commit never runs ahead of a written checkpoint; an older checkpoint
        would learn the labels between them twice or never): otherwise the model is
        unusable (stop, or start afresh by ``DRIFTLINE_CHECKPOINT_UNVERIFIABLE``). A model
        rolled back on request, or falling back past a corrupt newer version, is older on
        purpose: its labels are read again from just after its checkpoint, like its events."""
        assert self.checkpointer is not None
        committed = fb_position.committed
        if committed is None:
            return
        for model in list(found.learners):
            covered = fb_offsets.get(model, -1)
            if committed - 1 > covered and model in found.rolled_back | found.fallback:
                log.warning("partition %s model %s: reading the feedback topic again from "
                            "offset %s (its checkpoint is older than the commit on purpose)",
                            partition, model, covered + 1,
                            extra={"partition": partition, "model": model})
            elif committed - 1 > covered:
                self.metrics.checkpoint_rejected.labels(reason="older").inc()
                del found.learners[model]
                self.checkpointer.unusable(
                    partition, model, f"its checkpoint covers the feedback topic up to offset "
                    f"{covered}, but the group committed it up to {committed - 1}")

    def _fit_log(self, partition: int, learners: dict[str, tuple[int, Learner]],
                 position: LogPosition) -> tuple[dict[str, tuple[int, Learner]], int | None]:
        """Check where the partition resumes against its log; returns the learners to
        start with and an offset to seek to (None: as restored / committed).

        Raises:
            ServiceError: the resume offset lies past the log end (policy ``stop``).
        """
        label = str(partition)
        resume = (min(o for o, _ in learners.values()) + 1 if learners
                  else position.committed)
        if resume is None:
            return learners, None
        if resume > position.end:
            self.metrics.offset_out_of_range.labels(partition=label).inc()
            what = "checkpoint" if learners else "committed offset"
            line = (f"partition {partition}: the {what} resumes at offset {resume}, past the "
                    f"log end {position.end} (topic deleted, re-created or truncated?)")
            if self.checkpointer is None or (
                    self.checkpointer.settings.checkpoint_unverifiable == "stop"):
                raise ServiceError(f"{line}; stopping (set DRIFTLINE_CHECKPOINT_UNVERIFIABLE="
                                   "fresh to start every model afresh at the log start)")
            log.warning("%s; starting every model afresh at the log start %s", line,
                        position.start, extra={"partition": partition})
            for name in self.registry.names:
                self.metrics.fresh_starts.labels(model=name).inc()
            return {}, position.start
        if resume < position.start:
            gap = position.start - resume
            self.metrics.offset_gaps.labels(partition=label).inc()
            self.metrics.offset_gap_events.labels(partition=label).inc(gap)
            log.warning("partition %s: resuming at offset %s but the log starts at %s: %s "
                        "events were dropped by retention and are never learned", partition,
                        resume, position.start, gap, extra={"partition": partition})
            return learners, position.start
        return learners, None

    async def _starts(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each of ``tps`` starts without a checkpoint: the group's committed offset,
        else the log start (the merge of events and feedback needs both positions)."""
        consumer: Any = self.consumer  # aiokafka's AIOKafkaConsumer
        starts = {}
        for t in tps:
            committed = await consumer.committed(t)
            if committed is None:
                committed = (await consumer.beginning_offsets([t]))[t]
            starts[t] = committed
        return starts
